"""PostGIS store: an asyncpg pool, plain SQL, positions partitioned by UTC day."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from server.gtfs.model import Feed, FeedInfo, Route
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
from server.store import pg_gtfs, pg_insert, pg_lock, pg_migrate, pg_partitions, users
from server.store.base import (
    Conflict,
    Expired,
    GroupStats,
    HistoryReads,
    PoolStats,
    StoreUnavailable,
    retention_cutoff,
)
from server.store.groups import Grouper, Job, insert_grouper
from server.store.pg_fleet import PostgisFleet, set_token
from server.store.pg_replica import ReadReplica
from server.store.rows import Rows
from server.store.sql import DEVICE_COLS, LIVE_SELECT, USER_COLS
from server.store.sql import POSTGRES as SQL

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


def _as_is(value: datetime) -> datetime:
    return value  # asyncpg returns timestamptz as an aware UTC datetime


_ROWS = Rows(_as_is)


class PostgisStore(PostgisFleet):
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
        pgbouncer: bool = False,
        read_url: str | None = None,
        read_max_lag_s: float = 30.0,
    ) -> None:
        self._url = url
        # Behind PgBouncer in transaction mode a client's statements may reach a
        # different server connection after each transaction (D60).
        self._pgbouncer = pgbouncer
        self._migrate = migrate
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        # timeout= is asyncpg's connect timeout: a dead host fails fast, not after 60 s.
        self._pool_args = dict(
            min_size=min(min_size, max_size), max_size=max_size, timeout=connect_timeout
        )
        self._pool: Any = None
        self._replica = (
            ReadReplica(
                read_url,
                max_lag_s=read_max_lag_s,
                max_size=max_size,
                connect_timeout=connect_timeout,
                pool_kwargs=lambda: {
                    **self._connection_kwargs(),
                    "command_timeout": command_timeout,
                },
                transaction=pgbouncer,
            )
            if read_url
            else None
        )
        self._primary_reads = 0
        # Few statements at once, so batches arriving meanwhile form groups; the
        # rest of the pool serves reads, backfill and the other groups' waits.
        self._groups: Grouper[Job, Any] = insert_grouper(
            self._insert_group, max_running=group_statements or max(1, max_size // 4)
        )

    def _connection_kwargs(self) -> dict[str, Any]:
        if not self._pgbouncer:
            return {}  # asyncpg's statement cache: named statements, prepared once
        # No named prepared statements: the next transaction may run on another server
        # connection, which never saw them. asyncpg then uses the unnamed statement,
        # which is safe because _conn runs every use in one transaction.
        return {"statement_cache_size": 0}

    # lifecycle ---------------------------------------------------------------
    async def open(self) -> None:
        if self._migrate:
            await self.migrate()
        try:
            pool = await asyncpg.create_pool(
                self._url,
                # Behind PgBouncer no session state: the COPY path makes its table per use.
                init=None if self._pgbouncer else pg_insert.prepare_connection,
                reset=_keep_session,
                command_timeout=self._command_timeout,
                **self._connection_kwargs(),
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
                await asyncio.wait_for(self._groups.drain(), timeout=self._command_timeout)
        if self._replica is not None:
            await self._replica.close()
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
            conn = await asyncpg.connect(
                self._url, timeout=self._connect_timeout, **self._connection_kwargs()
            )
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
                if self._pgbouncer:
                    # A transaction keeps PgBouncer from handing the server connection
                    # to another client between asyncpg's Parse and its Bind.
                    async with conn.transaction():
                        yield conn
                else:
                    yield conn
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"PostgreSQL unavailable: {exc!r}") from exc

    async def ping(self) -> None:
        await self._fetchrow("SELECT 1")

    # maintenance: partitions (server/store/pg_partitions.py), pool, groups -------
    async def ensure_partitions(
        self, now: datetime | None = None, *, days_behind: int = 2, days_ahead: int = 7
    ) -> list[str]:
        today = (now or datetime.now(UTC)).astimezone(UTC).date()
        async with self._conn() as conn:
            return await pg_partitions.ensure(conn, today, days_behind, days_ahead)

    async def expire_positions(self, older_than_days: int, now: datetime | None = None) -> Expired:
        """Drop whole daily partitions, and delete the old rows of the default partition."""
        cutoff = retention_cutoff(now or datetime.now(UTC), older_than_days)
        async with self._conn() as conn:
            dropped, deleted = await pg_partitions.drop_older(conn, cutoff)
        return Expired(partitions=tuple(dropped), rows=deleted)

    def maintenance_lock(self) -> AbstractAsyncContextManager[bool]:
        return pg_lock.maintenance_lock(
            self._url, self._connect_timeout, self._connection_kwargs(), _UNAVAILABLE
        )

    async def refresh_statistics(self) -> None:
        # Autovacuum analyzes each daily partition but never the partitioned parent,
        # whose statistics plan every query across days.
        async with self._conn() as conn:
            await conn.execute("ANALYZE positions, last_positions, devices")

    async def database_bytes(self) -> int:
        return int(await self._fetchval("SELECT pg_database_size(current_database())"))

    def history_reads(self) -> HistoryReads:
        if self._replica is None:
            return HistoryReads(primary=self._primary_reads, replica=0)
        return HistoryReads(**self._replica.reads)

    def pool_stats(self) -> PoolStats | None:
        pool = self._pool
        if pool is None:
            return None
        return PoolStats(
            size=int(pool.get_size()), idle=int(pool.get_idle_size()), max=int(pool.get_max_size())
        )

    def group_stats(self) -> GroupStats:
        return GroupStats(self._groups.statements, self._groups.jobs)

    # one-statement helpers -------------------------------------------------------
    async def _fetchrow(self, sql: str, *args: object) -> Any:
        async with self._conn() as conn:
            return await conn.fetchrow(sql, *args)

    async def _fetchval(self, sql: str, *args: object) -> Any:
        async with self._conn() as conn:
            return await conn.fetchval(sql, *args)

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
                "INSERT INTO devices (name, token_hash, route) VALUES ($1, $2, $3)"
                f" RETURNING {DEVICE_COLS}",
                name,
                token_hash,
                route,
            )
        except asyncpg.exceptions.UniqueViolationError as exc:
            raise Conflict(f"device name or token already in use: {name!r}") from exc
        return _ROWS.device(row)

    async def device_by_token_hash(self, token_hash: str) -> Device | None:
        row = await self._fetchrow(SQL.device_by_token, token_hash)
        return None if row is None else _ROWS.device(row)

    async def get_device(self, device_id: int) -> Device | None:
        row = await self._fetchrow(SQL.get_device, device_id)
        return None if row is None else _ROWS.device(row)

    async def list_devices(self) -> list[Device]:
        return [_ROWS.device(r) for r in await self._fetch(SQL.list_devices)]

    async def set_device_token(self, device_id: int, token_hash: str) -> bool:
        async with self._conn() as conn, conn.transaction():
            return await set_token(conn, device_id, token_hash, datetime.now(UTC))

    async def revoke_device(self, device_id: int) -> bool:
        return await self._updated(SQL.revoke_device, device_id)

    async def installation_value(self, name: str, default: str) -> str:
        # Two statements: the SELECT must run on a snapshot taken after a concurrent
        # first caller's INSERT committed (ours then waited on it and did nothing).
        await self._fetch(SQL.keep_installation_value, name, default)
        row = await self._fetchrow(SQL.installation_value, name)
        return str(row["value"])

    async def update_device(
        self, device_id: int, *, in_service: bool | None = None, route: str | None = None
    ) -> Device | None:
        row = await self._fetchrow(SQL.update_device, in_service, route, device_id)
        return None if row is None else _ROWS.device(row)

    # users -------------------------------------------------------------------
    async def add_user(self, username: str, password_hash: str, role: Role) -> User:
        try:
            row = await self._fetchrow(
                "INSERT INTO users (username, password_hash, role) VALUES ($1, $2, $3)"
                f" RETURNING {USER_COLS}",
                username,
                password_hash,
                role,
            )
        except asyncpg.exceptions.UniqueViolationError as exc:
            raise Conflict(f"user name already in use: {username!r}") from exc
        return _ROWS.user(row)

    async def user_by_name(self, username: str) -> User | None:
        row = await self._fetchrow(SQL.user_by_name, username)
        return None if row is None else _ROWS.user(row)

    async def get_user(self, user_id: int) -> User | None:
        row = await self._fetchrow(SQL.get_user, user_id)
        return None if row is None else _ROWS.user(row)

    async def list_users(self) -> list[User]:
        return [_ROWS.user(r) for r in await self._fetch(SQL.list_users)]

    async def update_user(
        self, user_id: int, *, role: Role | None = None, password_hash: str | None = None
    ) -> User | None:
        async with self._conn() as conn:
            return await users.pg_update(conn, _ROWS, user_id, role, password_hash)

    async def delete_user(self, user_id: int) -> bool:
        async with self._conn() as conn:
            return await users.pg_delete(conn, user_id)

    async def start_session(self, family: str, user_id: int, jti: str, expires_at: int) -> None:
        now = int(datetime.now(UTC).timestamp())
        async with self._conn() as conn:
            await users.pg_start_session(conn, family, user_id, jti, expires_at, now)

    async def rotate_session(
        self, family: str, jti: str, new_jti: str, expires_at: int, now: int
    ) -> int | None:
        async with self._conn() as conn:
            return await users.pg_rotate_session(conn, family, jti, new_jti, expires_at, now)

    async def end_session(self, family: str) -> bool:
        async with self._conn() as conn:
            return bool(await conn.execute(SQL.end_session, family) == "DELETE 1")

    async def session_user(self, family: str, now: int) -> User | None:
        row = await self._fetchrow(SQL.session_user, family, now)
        return None if row is None else _ROWS.user(row)

    # telemetry ---------------------------------------------------------------
    async def insert_fixes(
        self, device_id: int, fixes: Sequence[FixIn], received_at: datetime
    ) -> InsertResult:
        if not fixes:
            return InsertResult(accepted=0, duplicates=0)
        job = Job(device_id, fixes, received_at)
        try:
            if len(fixes) < pg_insert.COPY_FROM:
                row = await self._groups.submit(job)
            else:
                row = await self._insert_one(job)
        except asyncpg.exceptions.ForeignKeyViolationError as exc:
            raise LookupError(f"no device {device_id}") from exc
        accepted = int(row["accepted"])
        live = _ROWS.live(row) if row["device_id"] is not None else None
        return InsertResult(accepted=accepted, duplicates=len(fixes) - accepted, live=live)

    async def _insert_one(self, job: Job) -> Any:
        async with self._conn() as conn:
            return await pg_insert.insert_batch(
                conn, job.device_id, job.fixes, job.received_at, make_stage=self._pgbouncer
            )

    async def _insert_group(self, jobs: list[Job]) -> list[Any]:
        if len(jobs) == 1:
            return [await self._insert_one(jobs[0])]
        async with self._conn() as conn:
            return await pg_insert.insert_group(conn, jobs)

    async def live_positions(self) -> list[LivePosition]:
        return [_ROWS.live(r) for r in await self._fetch(SQL.live_positions)]

    async def mark_seen(self, device_id: int, seen: Seen) -> None:
        try:
            await self._fetch(SQL.mark_seen, device_id, seen.at, seen.battery, seen.charge)
        except asyncpg.exceptions.ForeignKeyViolationError as exc:
            raise LookupError(f"no device {device_id}") from exc

    async def seen_devices(self) -> list[DeviceSeen]:
        return [_ROWS.device_seen(r) for r in await self._fetch(SQL.seen_devices)]

    async def add_event(self, event: Event) -> Event | None:
        try:
            row = await self._fetchrow(
                SQL.add_event,
                *(event.device_id, event.t, event.kind, event.received_at, event.lat, event.lon),
            )
        except asyncpg.exceptions.ForeignKeyViolationError as exc:
            raise LookupError(f"no device {event.device_id}") from exc
        return None if row is None else _ROWS.event(row)

    async def events(self, device_id: int, start: datetime, end: datetime) -> list[Event]:
        rows = await self._fetch(SQL.events, device_id, start, end)
        return [_ROWS.event(r) for r in rows]

    async def track(self, device_id: int, start: datetime, end: datetime) -> list[FixIn]:
        if self._replica is None:
            self._primary_reads += 1
            rows = await self._fetch(SQL.track, device_id, start, end)
        else:
            replica_rows = await self._replica.fetch(SQL.track, device_id, start, end)
            if replica_rows is None:
                rows = await self._fetch(SQL.track, device_id, start, end)
            else:
                rows = replica_rows
        return [_ROWS.fix(r) for r in rows]

    async def nearby(self, lat: float, lon: float, radius_m: float) -> list[LivePosition]:
        rows = await self._fetch(
            LIVE_SELECT + ", (SELECT ST_SetSRID(ST_MakePoint($2, $1), 4326)::geography AS g) AS q"
            " WHERE ST_DWithin(lp.geog, q.g, $3)"
            " ORDER BY ST_Distance(lp.geog, q.g), lp.device_id",
            lat,
            lon,
            radius_m,
        )
        return [_ROWS.live(r) for r in rows]

    # static GTFS and routes (server/store/pg_gtfs.py) ----------------------------------
    async def replace_feed(self, feed: Feed, version: str) -> FeedInfo:
        async with self._conn() as conn:
            return await pg_gtfs.replace_feed(conn, feed, version)

    async def feed_info(self) -> FeedInfo | None:
        async with self._conn() as conn:
            return await pg_gtfs.feed_info(conn)

    async def load_feed(self) -> Feed | None:
        async with self._conn() as conn:
            return await pg_gtfs.load_feed(conn)

    async def list_routes(self) -> list[Route]:
        async with self._conn() as conn:
            return await pg_gtfs.list_routes(conn)

    async def get_route(self, route_id: str) -> Route | None:
        async with self._conn() as conn:
            return await pg_gtfs.get_route(conn, route_id)

    async def add_route(self, route: Route) -> Route:
        async with self._conn() as conn:
            return await pg_gtfs.add_route(conn, route)

    async def update_route(self, route_id: str, changes: Mapping[str, Any]) -> Route | None:
        async with self._conn() as conn:
            return await pg_gtfs.update_route(conn, route_id, changes)

    async def delete_route(self, route_id: str) -> bool:
        async with self._conn() as conn:
            return await pg_gtfs.delete_route(conn, route_id)

    async def raise_watermark(self, name: str, value: int) -> int:
        async with self._conn() as conn:
            return await pg_gtfs.raise_watermark(conn, name, value)
