"""PostGIS store: an asyncpg pool, plain SQL, positions partitioned by UTC day."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from server.model import (
    Device,
    DeviceSeen,
    Event,
    FixIn,
    InsertResult,
    LivePosition,
    Role,
    Seen,
    User,
)  # fmt: skip
from server.store import pg_insert, pg_migrate, pg_partitions, pg_rows
from server.store.base import Conflict, StoreUnavailable
from server.store.groups import Grouper, Job, insert_grouper

# Errors that mean "the database is not reachable right now", as opposed to a bug
# in a query: the caller answers 503 and the agent retries later.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,  # connect timeout, pool acquire timeout, command timeout
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    # 55000 "database is not currently accepting connections" (ALLOW_CONNECTIONS false,
    # a maintenance window) and its 55P03 lock_timeout subclass: try again later.
    asyncpg.exceptions.ObjectNotInPrerequisiteStateError,
    # 3D000: the database is gone (dropped, or being restored from a backup).
    asyncpg.exceptions.InvalidCatalogNameError,
)


async def _keep_session(conn: Any) -> None:
    """Skip asyncpg's per-release reset query (a round trip on every acquire).

    Safe because the store never leaves session state behind: its advisory
    locks are transaction-scoped and its settings are ``SET LOCAL``.
    """


# The batch insert lives in pg_insert; the bench imports the statement from here.
_INSERT_BATCH = pg_insert.INSERT_BATCH


class PostgisStore:
    def __init__(
        self,
        url: str,
        *,
        min_size: int = 2,
        max_size: int = 10,
        migrate: bool = True,
        connect_timeout: float = 5.0,
        command_timeout: float = 30.0,
        group_statements: int | None = None,
    ) -> None:
        self._url = url
        self._migrate = migrate
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        # timeout= is asyncpg's connect timeout: a dead host fails fast, not after 60 s.
        self._pool_args = dict(
            min_size=min(min_size, max_size), max_size=max_size, timeout=connect_timeout
        )
        self._pool: Any = None
        # Few statements at once, so batches arriving meanwhile form groups; the
        # rest of the pool serves reads, backfill and the other groups' waits.
        self.groups: Grouper[Job, Any] = insert_grouper(
            self._insert_group, max_running=group_statements or max(1, max_size // 4)
        )

    # lifecycle ---------------------------------------------------------------
    async def open(self) -> None:
        if self._migrate:
            await self.migrate()
        try:
            pool = await asyncpg.create_pool(
                self._url,
                init=pg_insert.prepare_connection,
                reset=_keep_session,
                command_timeout=self._command_timeout,
                **self._pool_args,
            )
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {exc!r}") from exc
        self._pool = pool
        try:
            async with self._conn() as conn:
                await pg_migrate.check(conn)
            await self.ensure_partitions()
        except BaseException:
            self._pool = None
            await pool.close()
            raise

    async def close(self) -> None:
        if self._pool is not None:
            # Batches already taken in are stored (and answered) before the pool goes.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.groups.drain(), timeout=self._command_timeout)
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                # A graceful close waits for borrowed connections; never forever.
                await asyncio.wait_for(pool.close(), timeout=self._command_timeout)
            except TimeoutError:
                pool.terminate()

    async def migrate(self) -> list[str]:
        """Apply pending migrations; usable without open() (``bustracker migrate``)."""
        try:
            # A dedicated connection without command_timeout: a migration may be slow.
            conn = await asyncpg.connect(self._url, timeout=self._connect_timeout)
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {exc!r}") from exc
        try:
            names: list[str] = await pg_migrate.apply(conn)
            return names
        finally:
            await conn.close()

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[Any]:
        if self._pool is None:
            raise RuntimeError("PostgisStore is not open")
        try:
            async with self._pool.acquire(timeout=self._connect_timeout) as conn:
                yield conn
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"PostgreSQL unavailable: {exc!r}") from exc

    def pool_stats(self) -> dict[str, int] | None:
        """Connection pool use for /metrics; None when closed."""
        pool = self._pool
        if pool is None:
            return None
        return {
            "size": int(pool.get_size()),
            "idle": int(pool.get_idle_size()),
            "max": int(pool.get_max_size()),
        }

    async def ping(self) -> None:
        await self._fetchrow("SELECT 1")

    # partitions (server/store/pg_partitions.py) ---------------------------------
    async def ensure_partitions(
        self, now: datetime | None = None, *, days_behind: int = 2, days_ahead: int = 7
    ) -> list[str]:
        """Create the daily partitions around ``now`` that are missing; return their names.

        Call at start and periodically (daily is plenty: a week is created ahead).
        """
        today = (now or datetime.now(UTC)).astimezone(UTC).date()
        async with self._conn() as conn:
            return await pg_partitions.ensure(conn, today, days_behind, days_ahead)

    async def retention_drop(
        self, older_than_days: int = 90, now: datetime | None = None
    ) -> list[str]:
        """Drop daily partitions (and default-partition rows) older than the cutoff."""
        today = (now or datetime.now(UTC)).astimezone(UTC).date()
        async with self._conn() as conn:
            return await pg_partitions.drop_older(conn, today, older_than_days)

    # one-statement helpers -------------------------------------------------------
    async def _fetchrow(self, sql: str, *args: object) -> Any:
        async with self._conn() as conn:
            return await conn.fetchrow(sql, *args)

    async def _fetch(self, sql: str, *args: object) -> list[Any]:
        async with self._conn() as conn:
            rows: list[Any] = await conn.fetch(sql, *args)
            return rows

    async def _updated(self, sql: str, *args: object) -> bool:
        async with self._conn() as conn:
            return bool(await conn.execute(sql, *args) == "UPDATE 1")

    # devices -----------------------------------------------------------------
    async def add_device(self, name: str, token_hash: str, route: str | None = None) -> Device:
        try:
            row = await self._fetchrow(
                f"INSERT INTO devices (name, token_hash, route) VALUES ($1, $2, $3)"
                f" RETURNING {pg_rows.DEVICE_COLS}",
                name,
                token_hash,
                route,
            )
        except asyncpg.exceptions.UniqueViolationError as exc:
            raise Conflict(f"device name or token already in use: {name!r}") from exc
        return pg_rows.device(row)

    async def device_by_token_hash(self, token_hash: str) -> Device | None:
        sql = f"SELECT {pg_rows.DEVICE_COLS} FROM devices WHERE token_hash = $1 AND active"
        row = await self._fetchrow(sql, token_hash)
        return None if row is None else pg_rows.device(row)

    async def get_device(self, device_id: int) -> Device | None:
        row = await self._fetchrow(
            f"SELECT {pg_rows.DEVICE_COLS} FROM devices WHERE id = $1", device_id
        )
        return None if row is None else pg_rows.device(row)

    async def list_devices(self) -> list[Device]:
        return [
            pg_rows.device(r)
            for r in await self._fetch(f"SELECT {pg_rows.DEVICE_COLS} FROM devices ORDER BY id")
        ]

    async def set_device_token(self, device_id: int, token_hash: str) -> bool:
        # A new token is a fresh credential, so it also re-activates a revoked device.
        sql = "UPDATE devices SET token_hash = $2, active = true WHERE id = $1"
        try:
            return await self._updated(sql, device_id, token_hash)
        except asyncpg.exceptions.UniqueViolationError as exc:
            raise Conflict("token already in use") from exc

    async def revoke_device(self, device_id: int) -> bool:
        return await self._updated("UPDATE devices SET active = false WHERE id = $1", device_id)

    async def installation_value(self, name: str, default: str) -> str:
        # Two statements: the SELECT must run on a snapshot taken after a concurrent
        # first caller's INSERT committed (ours then waited on it and did nothing).
        await self._fetch(
            "INSERT INTO installation (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            name,
            default,
        )
        row = await self._fetchrow("SELECT value FROM installation WHERE name = $1", name)
        return str(row["value"])

    async def update_device(
        self, device_id: int, *, in_service: bool | None = None, route: str | None = None
    ) -> Device | None:
        row = await self._fetchrow(
            "UPDATE devices SET in_service = COALESCE($2, in_service),"
            f" route = COALESCE($3, route) WHERE id = $1 RETURNING {pg_rows.DEVICE_COLS}",
            device_id,
            in_service,
            route,
        )
        return None if row is None else pg_rows.device(row)

    # users -------------------------------------------------------------------
    async def add_user(self, username: str, password_hash: str, role: Role) -> User:
        try:
            row = await self._fetchrow(
                "INSERT INTO users (username, password_hash, role) VALUES ($1, $2, $3)"
                f" RETURNING {pg_rows.USER_COLS}",
                username,
                password_hash,
                role,
            )
        except asyncpg.exceptions.UniqueViolationError as exc:
            raise Conflict(f"user name already in use: {username!r}") from exc
        return pg_rows.user(row)

    async def user_by_name(self, username: str) -> User | None:
        row = await self._fetchrow(
            f"SELECT {pg_rows.USER_COLS} FROM users WHERE username = $1", username
        )
        return None if row is None else pg_rows.user(row)

    async def get_user(self, user_id: int) -> User | None:
        row = await self._fetchrow(f"SELECT {pg_rows.USER_COLS} FROM users WHERE id = $1", user_id)
        return None if row is None else pg_rows.user(row)

    # telemetry ---------------------------------------------------------------
    async def insert_fixes(
        self, device_id: int, fixes: Sequence[FixIn], received_at: datetime
    ) -> InsertResult:
        if not fixes:
            return InsertResult(accepted=0, duplicates=0)
        job = Job(device_id, fixes, received_at)
        try:
            if len(fixes) < pg_insert.COPY_FROM:
                row = await self.groups.submit(job)
            else:
                row = await self._insert_one(job)
        except asyncpg.exceptions.ForeignKeyViolationError as exc:
            raise LookupError(f"no device {device_id}") from exc
        accepted = int(row["accepted"])
        live = pg_rows.live(row) if row["device_id"] is not None else None
        return InsertResult(accepted=accepted, duplicates=len(fixes) - accepted, live=live)

    async def _insert_one(self, job: Job) -> Any:
        async with self._conn() as conn:
            return await pg_insert.insert_batch(conn, job.device_id, job.fixes, job.received_at)

    async def _insert_group(self, jobs: list[Job]) -> list[Any]:
        if len(jobs) == 1:
            return [await self._insert_one(jobs[0])]
        async with self._conn() as conn:
            return await pg_insert.insert_group(conn, jobs)

    async def live_positions(self) -> list[LivePosition]:
        return [
            pg_rows.live(r)
            for r in await self._fetch(pg_rows.LIVE_SELECT + " ORDER BY lp.device_id")
        ]

    async def mark_seen(self, device_id: int, seen: Seen) -> None:
        try:
            await self._fetch(pg_rows.MARK_SEEN, device_id, seen.at, seen.battery, seen.charge)
        except asyncpg.exceptions.ForeignKeyViolationError as exc:
            raise LookupError(f"no device {device_id}") from exc

    async def seen_devices(self) -> list[DeviceSeen]:
        rows = await self._fetch(pg_rows.SEEN_SELECT + " ORDER BY s.device_id")
        return [pg_rows.device_seen(r) for r in rows]

    async def add_event(self, event: Event) -> Event | None:
        try:
            row = await self._fetchrow(
                "INSERT INTO events (device_id, event_time, kind, received_at, lat, lon)"
                " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING"
                f" RETURNING {pg_rows.EVENT_COLS}",
                *(event.device_id, event.t, event.kind, event.received_at, event.lat, event.lon),
            )
        except asyncpg.exceptions.ForeignKeyViolationError as exc:
            raise LookupError(f"no device {event.device_id}") from exc
        return None if row is None else pg_rows.event(row)

    async def events(self, device_id: int, start: datetime, end: datetime) -> list[Event]:
        rows = await self._fetch(
            f"SELECT {pg_rows.EVENT_COLS} FROM events WHERE device_id = $1"
            " AND event_time >= $2 AND event_time < $3 ORDER BY event_time, id",
            *(device_id, start, end),
        )
        return [pg_rows.event(r) for r in rows]

    async def track(self, device_id: int, start: datetime, end: datetime) -> list[FixIn]:
        rows = await self._fetch(
            f"SELECT {pg_rows.FIX_COLS} FROM positions WHERE device_id = $1"
            " AND fix_time >= $2 AND fix_time < $3 ORDER BY fix_time",
            device_id,
            start,
            end,
        )
        return [pg_rows.fix(r) for r in rows]

    async def nearby(self, lat: float, lon: float, radius_m: float) -> list[LivePosition]:
        rows = await self._fetch(
            pg_rows.LIVE_SELECT
            + ", (SELECT ST_SetSRID(ST_MakePoint($2, $1), 4326)::geography AS g) AS q"
            " WHERE ST_DWithin(lp.geog, q.g, $3)"
            " ORDER BY ST_Distance(lp.geog, q.g), lp.device_id",
            lat,
            lon,
            radius_m,
        )
        return [pg_rows.live(r) for r in rows]

    async def count_positions(self, device_id: int | None = None) -> int:
        # "$1 IS NULL OR ..." would defeat the index; two statements keep each plan simple.
        if device_id is None:
            row = await self._fetchrow("SELECT count(*) AS n FROM positions")
        else:
            sql = "SELECT count(*) AS n FROM positions WHERE device_id = $1"
            row = await self._fetchrow(sql, device_id)
        return int(row["n"])
