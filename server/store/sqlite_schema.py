"""The SQLite file underneath ``SqliteStore``: connecting, migrating, rows as records.

Times are integer epoch microseconds (UTC); booleans are 0/1 integers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from server.model import Device, DeviceSeen, Event, FixIn, LivePosition, Seen, User
from server.store import migrations

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)



def to_us(dt: datetime) -> int:
    if dt.utcoffset() is None:
        raise ValueError(f"naive datetime {dt!r}: fix times must be timezone-aware")
    return (dt - _EPOCH) // _US


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def as_bool(value: int | None) -> bool | None:
    return None if value is None else bool(value)


def fix(row: sqlite3.Row) -> FixIn:
    return FixIn(
        t=from_us(row["fix_time"]), lat=row["lat"], lon=row["lon"], alt=row["alt"],
        speed=row["speed"], heading=row["heading"], hdop=row["hdop"],
        sats=row["sats"], mode=row["mode"], accuracy=row["accuracy"],
        battery=row["battery"], charge=as_bool(row["charge"]),
    )  # fmt: skip


def seen(row: sqlite3.Row) -> Seen | None:
    if row["seen_at"] is None:
        return None
    return Seen(from_us(row["seen_at"]), row["seen_battery"], as_bool(row["seen_charge"]))


def live(row: sqlite3.Row) -> LivePosition:
    return LivePosition(
        device_id=row["device_id"], name=row["name"], fix=fix(row),
        received_at=from_us(row["received_at"]), route=row["route"],
        in_service=bool(row["in_service"]), seen=seen(row),
    )  # fmt: skip


def device_seen(row: sqlite3.Row) -> DeviceSeen:
    last = seen(row)
    assert last is not None  # selected from device_seen, where seen_at is NOT NULL
    return DeviceSeen(
        device_id=row["device_id"], name=row["name"], seen=last, route=row["route"],
        in_service=bool(row["in_service"]),
    )  # fmt: skip


def event(row: sqlite3.Row) -> Event:
    return Event(
        id=row["id"], device_id=row["device_id"], kind=row["kind"],
        t=from_us(row["event_time"]), received_at=from_us(row["received_at"]),
        lat=row["lat"], lon=row["lon"],
    )  # fmt: skip


def device(row: sqlite3.Row) -> Device:
    return Device(
        id=row["id"], name=row["name"], active=bool(row["active"]),
        in_service=bool(row["in_service"]), route=row["route"],
    )  # fmt: skip


def user(row: sqlite3.Row) -> User:
    return User(**dict(row))  # the selected columns are named like the fields


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    # IMMEDIATE takes the write lock up front, so a second process sharing the
    # file waits in busy_timeout instead of failing half-way through.
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves (see _transaction).
    conn = sqlite3.connect(path, isolation_level=None, timeout=5.0)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply ``migrations/sqlite/`` from PRAGMA user_version on; return the names applied.

    File N brings user_version from N - 1 to N (the loader checks they run 1, 2, 3, ...).
    """
    steps = migrations.available("sqlite")
    with transaction(conn):
        # Read inside the write transaction: another process may have just migrated.
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > len(steps):
            raise RuntimeError(
                f"database schema version {version} is newer than this code ({len(steps)})"
            )
        for step in steps[version:]:
            for statement in statements(step.sql()):
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {len(steps)}")
    return [step.name for step in steps[version:]]


def statements(script: str) -> Iterator[str]:
    # executescript() would COMMIT our open transaction first, so split the file
    # and run each statement inside it.
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending
            pending = ""
    if any(ln.strip() and not ln.lstrip().startswith("--") for ln in pending.splitlines()):
        raise RuntimeError(f"unterminated SQL statement in migration: {pending[:80]!r}")
