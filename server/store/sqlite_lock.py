"""The SQLite store's maintenance lock: a non-blocking ``flock`` on a file beside the database.

SQLite has no advisory locks of its own, and its write lock is the one
ingest needs, so holding it for a whole maintenance pass would stall every
batch. ``flock`` is per open file, so it excludes a second worker in another
process and a second store in this one alike, and the kernel drops it when
the holder dies: a crashed worker never leaves the lock behind.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path


def lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".maintenance.lock")


@asynccontextmanager
async def maintenance_lock(database: Path) -> AsyncIterator[bool]:
    fd = os.open(lock_path(database), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing the file releases the lock
