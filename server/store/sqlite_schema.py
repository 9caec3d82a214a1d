"""The SQLite file underneath ``SqliteStore``: connecting, migrating, transactions.

Times are integer epoch microseconds (UTC); booleans are 0/1 integers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from server.store import migrations

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def to_us(dt: datetime) -> int:
    if dt.utcoffset() is None:
        raise ValueError(f"naive datetime {dt!r}: fix times must be timezone-aware")
    return (dt - _EPOCH) // _US


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


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
