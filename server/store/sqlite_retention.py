"""Retention on SQLite: old fixes deleted in bounded chunks, one device at a time.

``positions`` is one table keyed by (device_id, fix_time), so expiring is a
DELETE, not PostGIS's DROP of a daily partition. A single DELETE of months of
fixes would hold the write lock (and the store's one worker thread) for as
long as it runs, and every ingest request would wait behind it. So each
chunk is its own short transaction of at most ``CHUNK_ROWS`` rows, and the
store runs the chunks as separate calls on its worker thread: the batches
that arrive meanwhile are queued between chunks, not behind the whole run.

A chunk is one range of the primary key (one device, its oldest fixes), so
it costs a seek and ``CHUNK_ROWS`` deletions however big the table is.
``last_positions`` is a table of its own: a device's live position survives
the deletion of the fix it came from. Freed pages are reused by new fixes;
the file does not shrink (``VACUUM`` does that, offline).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from server.store.sqlite_schema import transaction

# About the fixes a 5,000-bus fleet sends in ten seconds: one chunk is a few
# milliseconds of work, one fsync.
CHUNK_ROWS = 5000

# The chunk's upper bound is the (chunk_rows + 1)-th oldest expired fix of the
# device, or the cutoff when fewer are left: fix_time is unique per device, so
# at most chunk_rows rows go, all of them before the cutoff.
_DELETE_CHUNK = """
DELETE FROM positions WHERE device_id = :device AND fix_time < coalesce(
    (SELECT fix_time FROM positions WHERE device_id = :device AND fix_time < :cutoff
     ORDER BY fix_time LIMIT 1 OFFSET :chunk),
    :cutoff)
"""


def device_ids(conn: sqlite3.Connection) -> list[int]:
    """Every device, revoked ones too: their history expires like the others'."""
    return [int(row[0]) for row in conn.execute("SELECT id FROM devices ORDER BY id")]


def chunk(device_id: int, cutoff_us: int, chunk_rows: int) -> Callable[[sqlite3.Connection], int]:
    """One transaction deleting at most ``chunk_rows`` of the device's fixes before the cutoff.

    Returns the work for the store's worker thread; it returns the rows deleted.
    Fewer than ``chunk_rows`` means the device has none left to expire.
    """
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    args = {"device": device_id, "cutoff": cutoff_us, "chunk": chunk_rows}

    def work(conn: sqlite3.Connection) -> int:
        with transaction(conn):
            return conn.execute(_DELETE_CHUNK, args).rowcount

    return work
