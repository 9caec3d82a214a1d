#!/usr/bin/env bash
# Daily backup (cron: 0 3 * * * /opt/bustracker/deploy/backup.sh).
# PostGIS via pg_dump custom format; the embedded SQLite store via its online
# backup API, which is consistent while the server writes.
set -euo pipefail
BACKUP_DIR=${BACKUP_DIR:-/backups/bustracker}
KEEP_DAYS=${KEEP_DAYS:-30}
DATE=$(date -u +%Y%m%d_%H%M%S)
mkdir -p "$BACKUP_DIR"
if [[ -n "${DATABASE_URL:-}" ]]; then
    pg_dump --format=custom --file "$BACKUP_DIR/postgres_$DATE.dump" "$DATABASE_URL"
else
    DATA_DIR=${BUSTRACKER_DATA_DIR:-/var/lib/bustracker}
    sqlite3 "$DATA_DIR/bustracker.sqlite3" ".backup '$BACKUP_DIR/sqlite_$DATE.sqlite3'"
fi
find "$BACKUP_DIR" -name 'postgres_*.dump' -mtime +"$KEEP_DAYS" -delete
find "$BACKUP_DIR" -name 'sqlite_*.sqlite3' -mtime +"$KEEP_DAYS" -delete
echo "backup completed: $DATE"
