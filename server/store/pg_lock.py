"""The PostGIS store's maintenance lock: one worker at a time across every machine (D59).

A transaction-level advisory lock on a connection of its own, held while
the block runs. Transaction-scoped so that PgBouncer in transaction mode
keeps this client on one server connection for as long as the lock is held
(a session lock would stay behind on a server connection someone else then
gets); idle in read committed between statements, the open transaction
keeps no snapshot and holds back no vacuum.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from server.store import pg_migrate
from server.store.base import StoreUnavailable

WORKER_LOCK_KEY = pg_migrate.LOCK_KEY + 2


@asynccontextmanager
async def maintenance_lock(
    url: str,
    timeout: float,
    connect_kwargs: dict[str, Any],
    unavailable: tuple[type[BaseException], ...],
) -> AsyncIterator[bool]:
    """Yield whether this caller got the lock; never waits for it."""
    try:
        conn = await asyncpg.connect(url, timeout=timeout, **connect_kwargs)
    except unavailable as exc:
        raise StoreUnavailable(f"cannot connect to PostgreSQL: {exc!r}") from exc
    try:
        async with conn.transaction():
            yield bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", WORKER_LOCK_KEY))
    finally:
        await conn.close()
