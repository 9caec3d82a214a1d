"""History reads from a PostgreSQL read replica, when it is there and current enough.

Only reads that scan history (a vehicle's track) come here: they are the
heavy ones, and a few seconds of lag does not change what they show. Every
read first asks the standby how far behind it is; when it is further than
the allowed lag, unreachable, or was unreachable a moment ago, the read goes
to the primary instead, so a lagging or absent replica costs time, never
answers.

Lag is 0 while the standby has replayed everything it received (an idle
primary writes nothing, and ``pg_last_xact_replay_timestamp()`` alone would
call an idle, current standby hours behind), else the age of the last
transaction it replayed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]

log = logging.getLogger(__name__)

LAG_SQL = """
SELECT CASE
    WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0
    ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 'Infinity')
END::float8
"""
# After a failure the replica is left alone this long: each read would otherwise
# pay a connect timeout while it is down.
RETRY_AFTER_S = 5.0


class ReadReplica:
    def __init__(
        self,
        url: str,
        *,
        max_lag_s: float,
        max_size: int,
        connect_timeout: float,
        pool_kwargs: Callable[[], dict[str, Any]],
        transaction: bool = False,
    ) -> None:
        self._url = url
        self._max_lag_s = max_lag_s
        self._max_size = max_size
        self._connect_timeout = connect_timeout
        self._pool_kwargs = pool_kwargs
        # Behind PgBouncer (D60) every use runs in one transaction.
        self._transaction = transaction
        self._pool: Any = None
        self._down_until = 0.0
        self.reads = {"primary": 0, "replica": 0}

    async def fetch(self, sql: str, *args: object) -> list[Any] | None:
        """The rows from the replica, or None when it may not or cannot answer: use the primary.

        A read that fails on the replica (it went away mid-query, or recovery
        cancelled the query) is not an error for the caller either.
        """
        conn = await self._acquire()
        if conn is None:
            self.reads["primary"] += 1
            return None
        try:
            if self._transaction:
                async with conn.transaction():
                    rows: list[Any] = await conn.fetch(sql, *args)
            else:
                rows = await conn.fetch(sql, *args)
        except Exception as exc:
            self._failed(exc)
            self.reads["primary"] += 1
            return None
        finally:
            if self._pool is not None:
                await self._pool.release(conn)
        self.reads["replica"] += 1
        return rows

    def _failed(self, exc: Exception) -> None:
        log.warning("read replica unavailable, reading from the primary: %r", exc)
        self._down_until = time.monotonic() + RETRY_AFTER_S

    async def _acquire(self) -> Any:
        if time.monotonic() < self._down_until:
            return None
        conn = None
        try:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self._url,
                    min_size=1,
                    max_size=self._max_size,
                    timeout=self._connect_timeout,
                    **self._pool_kwargs(),
                )
            conn = await self._pool.acquire(timeout=self._connect_timeout)
            lag = float(await conn.fetchval(LAG_SQL, timeout=self._connect_timeout))
        except Exception as exc:
            if conn is not None and self._pool is not None:
                await self._pool.release(conn)
            self._failed(exc)
            await self.close()
            return None
        if lag > self._max_lag_s:
            await self._pool.release(conn)
            log.info(
                "read replica %.1f s behind (over %g s): reading from the primary",
                lag,
                self._max_lag_s,
            )
            return None
        return conn

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.terminate()
