#!/usr/bin/env bash
# Restore a backup made by backup.sh: ./restore.sh FILE
# Stop the server first (systemctl stop bustracker-server).
set -euo pipefail
FILE=${1:?usage: restore.sh BACKUP_FILE}
case "$FILE" in
    *.dump)
        : "${DATABASE_URL:?DATABASE_URL must name the database to restore into}"
        pg_restore --clean --if-exists --no-owner -d "$DATABASE_URL" "$FILE"
        ;;
    *.sqlite3)
        DATA_DIR=${BUSTRACKER_DATA_DIR:-/var/lib/bustracker}
        install -m 0640 "$FILE" "$DATA_DIR/bustracker.sqlite3"
        rm -f "$DATA_DIR/bustracker.sqlite3-wal" "$DATA_DIR/bustracker.sqlite3-shm"
        ;;
    *) echo "restore.sh: unknown backup type: $FILE" >&2; exit 2 ;;
esac
echo "restored $FILE; now run: bustracker migrate && systemctl start bustracker-server"
