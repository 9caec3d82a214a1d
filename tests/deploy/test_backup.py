"""deploy/scripts/backup, restore, migrate and restore-check, run for real: against PostGIS
(pg_dump/pg_restore) and the embedded SQLite store, with data written by the server's store."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from server.auth import hash_device_token
from server.model import FixIn, Seen
from server.store import open_store
from tests.pg_service import PgCluster
from tests.server.running import run_async

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "deploy" / "scripts"
BUSTRACKER = str(Path(sys.executable).parent / "bustracker")
TABLES = ("devices", "users", "positions", "last_positions", "device_seen", "installation")
# The day partitions hold positions: a restore must bring back the partitioning, not only rows.
PARTITIONS = "SELECT count(*) FROM pg_inherits WHERE inhparent = 'positions'::regclass"


def populate(database_url: str | None, data_dir: Path) -> None:
    """Three buses with two days of fixes, two operators, a phone heartbeat."""

    async def work() -> None:
        store = open_store(database_url, data_dir)
        await store.migrate()
        await store.open()
        try:
            now = datetime.now(UTC).replace(microsecond=0)
            await store.ensure_partitions(now)
            for n in range(3):
                device = await store.add_device(f"bus-{n}", hash_device_token(f"t{n}"), str(n))
                fixes = [
                    FixIn(t=now - timedelta(hours=h), lat=45.0 + n + h / 100, lon=9.0, speed=h)
                    for h in range(0, 40, 4)
                ]
                await store.insert_fixes(device.id, fixes, now)
            await store.mark_seen(device.id, Seen(at=now, battery=80.0, charge=True))
            # What the hash is does not matter here, and argon2 would cost a second.
            await store.add_user("alice", "$argon2id$v=19$m=65536,t=3,p=4$alice", "admin")
            await store.add_user("bob", "$argon2id$v=19$m=65536,t=3,p=4$bob", "viewer")
        finally:
            await store.close()

    run_async(work)


def pg_snapshot(url: str) -> dict[str, Any]:
    async def work() -> dict[str, Any]:
        conn = await asyncpg.connect(url)
        try:
            out: dict[str, Any] = {}
            for table in TABLES:
                rows = await conn.fetch(f"SELECT * FROM {table}")
                out[table] = sorted(tuple(str(v) for v in r.values()) for r in rows)
            out["partitions"] = await conn.fetchval(PARTITIONS)
            out["migrations"] = await conn.fetch("SELECT version FROM schema_migrations")
            return out
        finally:
            await conn.close()

    return run_async(work)


def sqlite_snapshot(path: Path) -> dict[str, Any]:
    with sqlite3.connect(path) as conn:
        out: dict[str, Any] = {
            t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall()) for t in TABLES
        }
        out["version"] = conn.execute("PRAGMA user_version").fetchone()
    return out


def script(name: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPTS / name), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "BUSTRACKER": BUSTRACKER, **env},
        timeout=120,
    )


def psql(url: str, sql: str) -> None:
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql], check=True)


def test_postgis_backup_wipe_restore_gives_back_the_same_data(
    postgis_url: str, pg_cluster: PgCluster, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    populate(postgis_url, tmp_path / "unused")
    before = pg_snapshot(postgis_url)
    assert len(before["positions"]) == 30 and len(before["last_positions"]) == 3
    assert before["partitions"] >= 3

    backup = script("backup", DATABASE_URL=postgis_url, BACKUP_DIR=str(tmp_path / "b"))
    assert backup.returncode == 0, backup.stderr
    dump = Path(backup.stdout.splitlines()[-1])
    assert dump.is_file() and dump.name.endswith(".dump")

    # The disaster: the tables are gone (PostGIS itself stays, as the runbook installs it).
    psql(postgis_url, "DROP TABLE positions, last_positions, device_seen, events CASCADE")
    psql(postgis_url, "DROP TABLE devices, users, installation, schema_migrations CASCADE")
    restored = script("restore", str(dump), DATABASE_URL=postgis_url)
    assert restored.returncode == 0, restored.stderr
    assert pg_snapshot(postgis_url) == before

    # Over data that changed since (a bad import, say): the backup's state comes back whole.
    psql(postgis_url, "DELETE FROM positions WHERE speed > 20; UPDATE devices SET name = 'x' || id")
    restored = script("restore", str(dump), DATABASE_URL=postgis_url)
    assert restored.returncode == 0, restored.stderr
    assert pg_snapshot(postgis_url) == before

    # The monthly drill on a scratch database reports what the backup holds.
    scratch = pg_cluster.create_database()
    drop: Callable[[], None] = lambda: pg_cluster.drop_database(scratch)  # noqa: E731
    request.addfinalizer(drop)
    check = script(
        "restore-check", BACKUP_DIR=str(dump.parent), CHECK_DATABASE_URL=pg_cluster.url(scratch)
    )
    assert check.returncode == 0, check.stderr
    assert "restore-check: devices 3" in check.stdout
    assert "restore-check: positions 30" in check.stdout
    assert "restore-check: last_positions 3" in check.stdout
    assert check.stdout.rstrip().endswith("restore-check: ok")


def test_sqlite_backup_wipe_restore_gives_back_the_same_data(tmp_path: Path) -> None:
    data = tmp_path / "data"
    populate(None, data)
    store = data / "bustracker.sqlite3"
    before = sqlite_snapshot(store)
    assert len(before["positions"]) == 30
    backup = script("backup", BUSTRACKER_DATA_DIR=str(data), BACKUP_DIR=str(tmp_path / "b"))
    assert backup.returncode == 0, backup.stderr
    copy = backup.stdout.splitlines()[-1]
    for leftover in data.iterdir():
        leftover.unlink()
    restored = script("restore", copy, BUSTRACKER_DATA_DIR=str(data))
    assert restored.returncode == 0, restored.stderr
    assert sqlite_snapshot(store) == before


def test_a_damaged_sqlite_backup_is_refused_and_the_store_kept(tmp_path: Path) -> None:
    data = tmp_path / "data"
    populate(None, data)
    before = sqlite_snapshot(data / "bustracker.sqlite3")
    bad = tmp_path / "bustracker_20260101T000000Z.sqlite3"
    bad.write_bytes(b"SQLite format 3\x00" + b"\x00" * 200)
    restored = script("restore", str(bad), BUSTRACKER_DATA_DIR=str(data))
    assert restored.returncode != 0
    assert sqlite_snapshot(data / "bustracker.sqlite3") == before


def test_backups_past_retention_are_deleted_and_the_rest_kept(tmp_path: Path) -> None:
    data = tmp_path / "data"
    populate(None, data)
    backups = tmp_path / "b"
    backups.mkdir()
    day = 86400

    def aged(name: str, days: int) -> Path:
        path = backups / name
        path.write_text("old")
        os.utime(path, (time.time() - days * day, time.time() - days * day))
        return path

    expired = aged("bustracker_20250101T030000Z.sqlite3", 40)
    recent = aged("bustracker_20251120T030000Z.sqlite3", 10)
    other = aged("notes.txt", 400)
    backup = script(
        "backup", BUSTRACKER_DATA_DIR=str(data), BACKUP_DIR=str(backups), KEEP_DAYS="30"
    )
    assert backup.returncode == 0, backup.stderr
    assert not expired.exists()
    assert recent.exists() and other.exists()
    assert Path(backup.stdout.splitlines()[-1]).exists()


def test_migrate_backs_up_first_and_never_migrates_without_a_backup(
    postgis_url: str, tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    failed = script("migrate", DATABASE_URL=postgis_url, BACKUP_DIR=str(blocked))
    assert failed.returncode != 0
    assert "applied" not in failed.stdout
    migrated = script("migrate", DATABASE_URL=postgis_url, BACKUP_DIR=str(tmp_path))
    assert migrated.returncode == 0, migrated.stderr
    assert "backup first" in migrated.stdout
    # Nothing had been applied by the failed run: the whole schema goes in now.
    assert "applied 0001" in migrated.stdout
    assert len(list(tmp_path.glob("bustracker_*.dump"))) == 1


def test_restore_check_fails_on_a_broken_backup(pg_cluster: PgCluster, tmp_path: Path) -> None:
    broken = tmp_path / "bustracker_20260101T030000Z.dump"
    broken.write_bytes(b"PGDMP not really")
    check = script("restore-check", str(broken), CHECK_DATABASE_URL=pg_cluster.url("postgres"))
    assert check.returncode != 0
    assert "restore-check: ok" not in check.stdout
