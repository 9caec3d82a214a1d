"""The server's SQLite store commits durably: ``synchronous=FULL`` in WAL mode.

NORMAL in WAL mode can lose the last transactions on power loss, and a bus
unit that got its 200 has dropped those fixes from its buffer.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from server.store.sqlite import SqliteStore

FULL = 2


async def test_the_sqlite_store_commits_with_synchronous_full(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "bustracker.sqlite3")
    await store.open()
    try:
        mode = await store._run(lambda c: c.execute("PRAGMA synchronous").fetchone()[0])
        journal = await store._run(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        await store.close()
    assert (mode, journal) == (FULL, "wal")
    assert sqlite3.sqlite_version_info >= (3, 35)  # RETURNING, which the store uses
