"""SQLite store: the embedded default when no DATABASE_URL is given.

One connection, used only from one dedicated worker thread: sqlite3 calls block,
so they must leave the event loop, and a single thread serialises them without
any locking of our own. Times are stored as integer epoch microseconds, which
round-trips a UTC datetime exactly and sorts correctly.

Durability: WAL with ``synchronous=FULL``, so every commit fsyncs the WAL before
``insert_fixes`` returns. ``NORMAL`` would survive a process crash but can lose
the last commits on power loss, and the ingest answer promises durability.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

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
)
from server.store import sqlite_gtfs, sqlite_lock, sqlite_retention, users
from server.store import sqlite_schema as schema
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
from server.store.rows import Rows
from server.store.sql import DEVICE_COLS, POSITION_COLS, USER_COLS
from server.store.sql import SQLITE as SQL
from server.store.sqlite_fleet import SqliteFleet, set_token
from server.vehicle import distance_m

T = TypeVar("T")


# Primary result codes that mean "the file cannot be used right now" (locked
# past busy_timeout, disk full, I/O error, cannot open), not a bug in a query.
_UNAVAILABLE_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_READONLY}
_UNAVAILABLE_CODES |= {sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN}

_ROWS = Rows(schema.from_us)


@contextmanager
def _conflict_on_unique(message: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.IntegrityError as exc:
        if exc.sqlite_errorcode == sqlite3.SQLITE_CONSTRAINT_UNIQUE:
            raise Conflict(message) from exc
        raise


# The ingest hot path, SQLite's own (pg_insert.py is PostgreSQL's).
_INSERT_POSITION = (
    f"INSERT INTO positions ({POSITION_COLS}) VALUES ({', '.join('?' * 14)})"
    " ON CONFLICT (device_id, fix_time) DO NOTHING"
)
_MOVE_LAST = (
    f"INSERT INTO last_positions ({POSITION_COLS}) VALUES ({', '.join('?' * 14)})"
    " ON CONFLICT (device_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in POSITION_COLS.split(", ")[1:])
    + " WHERE excluded.fix_time > last_positions.fix_time"
)


def _insert_job(conn: sqlite3.Connection, job: Job) -> InsertResult:
    """One batch, inside the caller's transaction."""
    received = schema.to_us(job.received_at)
    rows = [
        (job.device_id, received, schema.to_us(f.t), f.lat, f.lon, f.alt, f.speed, f.heading,
         f.hdop, f.sats, f.mode, f.accuracy, f.battery, None if f.charge is None else int(f.charge))
        for f in job.fixes
    ]  # fmt: skip
    # Newest fix, first occurrence on ties: the same one positions keeps.
    newest = rows[0]
    for row in rows[1:]:
        if row[2] > newest[2]:
            newest = row
    before = conn.total_changes
    try:
        conn.executemany(_INSERT_POSITION, rows)
    except sqlite3.IntegrityError as exc:
        if exc.sqlite_errorcode == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
            raise LookupError(f"no device {job.device_id}") from exc
        raise
    accepted = conn.total_changes - before
    before = conn.total_changes
    conn.execute(_MOVE_LAST, newest)
    live = None
    if conn.total_changes > before:
        live = _ROWS.live(conn.execute(SQL.live_position, (job.device_id,)).fetchone())
    return InsertResult(accepted=accepted, duplicates=len(job.fixes) - accepted, live=live)


class SqliteStore(SqliteFleet):
    def __init__(self, path: Path | str) -> None:
        self._path = Path(path)
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._history_reads = 0
        # One writer: while it commits a group, the batches arriving form the next.
        self._groups: Grouper[Job, InsertResult] = insert_grouper(self._insert_group, max_running=1)

    @property
    def path(self) -> Path:
        return self._path

    async def _call(self, fn: Callable[[], T]) -> T:
        if self._executor is None:
            raise RuntimeError("SqliteStore is not open")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF in _UNAVAILABLE_CODES:
                raise StoreUnavailable(f"SQLite unavailable: {exc}") from exc
            raise

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            if self._conn is None:
                raise RuntimeError("SqliteStore is not open")
            return fn(self._conn)

        return await self._call(call)

    # lifecycle ---------------------------------------------------------------
    async def open(self) -> None:
        await self._open()

    async def _open(self) -> list[str]:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bustracker-sqlite")

        def connect() -> list[str]:
            conn = schema.connect(self._path)
            try:
                applied = schema.migrate(conn)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
            return applied

        try:
            return await self._call(connect)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    async def migrate(self) -> list[str]:
        """Bring the schema up to date (open() does this too); return what was applied."""
        if self._conn is not None:
            return []
        applied = await self._open()
        await self.close()
        return applied

    async def close(self) -> None:
        if self._executor is None:
            return
        await self._groups.drain()  # batches already taken in are stored before closing

        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await self._call(close)
        self._executor.shutdown(wait=True)
        self._executor = None

    async def ping(self) -> None:
        await self._run(lambda c: c.execute("SELECT count(*) FROM devices").fetchone())

    # maintenance -------------------------------------------------------------------
    async def ensure_partitions(
        self, now: datetime | None = None, *, days_behind: int = 2, days_ahead: int = 7
    ) -> list[str]:
        """No partitions on SQLite (positions is one table): nothing to create, ``[]``."""
        return []

    async def expire_positions(
        self,
        older_than_days: int,
        now: datetime | None = None,
        *,
        chunk_rows: int = sqlite_retention.CHUNK_ROWS,
    ) -> Expired:
        """Delete the fixes before the cutoff in chunks (server/store/sqlite_retention.py).

        Each chunk is a separate call on the worker thread, so batches arriving
        meanwhile are stored between two chunks, not after the whole run.
        """
        cutoff = schema.to_us(retention_cutoff(now or datetime.now(UTC), older_than_days))
        deleted = 0
        for device_id in await self._run(sqlite_retention.device_ids):
            work = sqlite_retention.chunk(device_id, cutoff, chunk_rows)
            while (n := await self._run(work)) == chunk_rows:
                deleted += n
            deleted += n
        return Expired(rows=deleted)

    def maintenance_lock(self) -> AbstractAsyncContextManager[bool]:
        return sqlite_lock.maintenance_lock(self._path)

    async def refresh_statistics(self) -> None:
        # Bounded sampling (what PRAGMA optimize uses), so a big file is not read whole.
        def analyze(conn: sqlite3.Connection) -> None:
            conn.execute("PRAGMA analysis_limit = 1000")
            conn.execute("ANALYZE")

        await self._run(analyze)

    async def database_bytes(self) -> int:
        def size(conn: sqlite3.Connection) -> int:
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            return int(pages) * int(conn.execute("PRAGMA page_size").fetchone()[0])

        return await self._run(size)

    def history_reads(self) -> HistoryReads:
        """No replicas for an embedded file: every read is the primary's."""
        return HistoryReads(primary=self._history_reads, replica=0)

    def pool_stats(self) -> PoolStats | None:
        """One connection on one worker thread, no pool: always None."""
        return None

    def group_stats(self) -> GroupStats:
        return GroupStats(self._groups.statements, self._groups.jobs)

    # one-statement helpers -------------------------------------------------------
    async def _row(self, sql: str, *args: object) -> sqlite3.Row | None:
        row: sqlite3.Row | None = await self._run(lambda c: c.execute(sql, args).fetchone())
        return row

    async def _rows(self, sql: str, *args: object) -> list[sqlite3.Row]:
        return await self._run(lambda c: c.execute(sql, args).fetchall())

    async def _changed(self, sql: str, *args: object) -> bool:
        return await self._run(lambda c: c.execute(sql, args).rowcount == 1)

    # devices -----------------------------------------------------------------
    async def add_device(self, name: str, token_hash: str, route: str | None = None) -> Device:
        with _conflict_on_unique(f"device name or token already in use: {name!r}"):
            row = await self._row(
                "INSERT INTO devices (name, token_hash, route, created_at)"
                f" VALUES (?, ?, ?, ?) RETURNING {DEVICE_COLS}",
                *(name, token_hash, route, schema.to_us(datetime.now(UTC))),
            )
        assert row is not None  # RETURNING always yields the inserted row
        return _ROWS.device(row)

    async def device_by_token_hash(self, token_hash: str) -> Device | None:
        row = await self._row(SQL.device_by_token, token_hash)
        return None if row is None else _ROWS.device(row)

    async def get_device(self, device_id: int) -> Device | None:
        row = await self._row(SQL.get_device, device_id)
        return None if row is None else _ROWS.device(row)

    async def list_devices(self) -> list[Device]:
        return [_ROWS.device(r) for r in await self._rows(SQL.list_devices)]

    async def set_device_token(self, device_id: int, token_hash: str) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            with schema.transaction(conn):
                return set_token(conn, device_id, token_hash, datetime.now(UTC))

        return await self._run(work)

    async def revoke_device(self, device_id: int) -> bool:
        return await self._changed(SQL.revoke_device, device_id)

    async def installation_value(self, name: str, default: str) -> str:
        def keep(conn: sqlite3.Connection) -> str:
            with schema.transaction(conn):
                conn.execute(SQL.keep_installation_value, (name, default))
                row = conn.execute(SQL.installation_value, (name,))
                return str(row.fetchone()[0])

        return await self._run(keep)

    async def update_device(
        self, device_id: int, *, in_service: bool | None = None, route: str | None = None
    ) -> Device | None:
        flag = None if in_service is None else int(in_service)
        row = await self._row(SQL.update_device, flag, route, device_id)
        return None if row is None else _ROWS.device(row)

    # users -------------------------------------------------------------------
    async def add_user(self, username: str, password_hash: str, role: Role) -> User:
        with _conflict_on_unique(f"user name already in use: {username!r}"):
            row = await self._row(
                "INSERT INTO users (username, password_hash, role, created_at)"
                f" VALUES (?, ?, ?, ?) RETURNING {USER_COLS}",
                *(username, password_hash, role, schema.to_us(datetime.now(UTC))),
            )
        assert row is not None  # RETURNING always yields the inserted row
        return _ROWS.user(row)

    async def user_by_name(self, username: str) -> User | None:
        row = await self._row(SQL.user_by_name, username)
        return None if row is None else _ROWS.user(row)

    async def get_user(self, user_id: int) -> User | None:
        row = await self._row(SQL.get_user, user_id)
        return None if row is None else _ROWS.user(row)

    async def list_users(self) -> list[User]:
        return [_ROWS.user(r) for r in await self._rows(SQL.list_users)]

    async def update_user(
        self, user_id: int, *, role: Role | None = None, password_hash: str | None = None
    ) -> User | None:
        result: User | None = await self._run(
            users.sqlite_update(_ROWS, user_id, role, password_hash)
        )
        return result

    async def delete_user(self, user_id: int) -> bool:
        return bool(await self._run(users.sqlite_delete(user_id)))

    async def start_session(self, family: str, user_id: int, jti: str, expires_at: int) -> None:
        now = int(datetime.now(UTC).timestamp())
        await self._run(users.sqlite_start_session(family, user_id, jti, expires_at, now))

    async def rotate_session(
        self, family: str, jti: str, new_jti: str, expires_at: int, now: int
    ) -> int | None:
        user_id: int | None = await self._run(
            users.sqlite_rotate_session(family, jti, new_jti, expires_at, now)
        )
        return user_id

    async def end_session(self, family: str) -> bool:
        return await self._run(lambda c: c.execute(SQL.end_session, (family,)).rowcount == 1)

    async def session_user(self, family: str, now: int) -> User | None:
        row = await self._row(SQL.session_user, family, now)
        return None if row is None else _ROWS.user(row)

    # telemetry ---------------------------------------------------------------
    async def insert_fixes(
        self, device_id: int, fixes: Sequence[FixIn], received_at: datetime
    ) -> InsertResult:
        if not fixes:
            return InsertResult(accepted=0, duplicates=0)
        return await self._groups.submit(Job(device_id, fixes, received_at))

    async def _insert_group(self, jobs: list[Job]) -> list[InsertResult]:
        # One transaction, so one fsync, for every batch that waited meanwhile.
        def work(conn: sqlite3.Connection) -> list[InsertResult]:
            with schema.transaction(conn):
                return [_insert_job(conn, job) for job in jobs]

        return await self._run(work)

    async def live_positions(self) -> list[LivePosition]:
        return [_ROWS.live(r) for r in await self._rows(SQL.live_positions)]

    async def mark_seen(self, device_id: int, seen: Seen) -> None:
        charge = None if seen.charge is None else int(seen.charge)

        def work(conn: sqlite3.Connection) -> None:
            with schema.transaction(conn):
                conn.execute(
                    SQL.mark_seen, (device_id, schema.to_us(seen.at), seen.battery, charge)
                )

        try:
            await self._run(work)
        except sqlite3.IntegrityError as exc:
            raise LookupError(f"no device {device_id}") from exc

    async def seen_devices(self) -> list[DeviceSeen]:
        return [_ROWS.device_seen(r) for r in await self._rows(SQL.seen_devices)]

    async def add_event(self, event: Event) -> Event | None:
        def work(conn: sqlite3.Connection) -> sqlite3.Row | None:
            with schema.transaction(conn):
                row: sqlite3.Row | None = conn.execute(
                    SQL.add_event,
                    (event.device_id, schema.to_us(event.t), event.kind,
                     schema.to_us(event.received_at), event.lat, event.lon),
                ).fetchone()  # fmt: skip
                return row

        try:
            row = await self._run(work)
        except sqlite3.IntegrityError as exc:
            raise LookupError(f"no device {event.device_id}") from exc
        return None if row is None else _ROWS.event(row)

    async def events(self, device_id: int, start: datetime, end: datetime) -> list[Event]:
        rows = await self._rows(SQL.events, device_id, schema.to_us(start), schema.to_us(end))
        return [_ROWS.event(r) for r in rows]

    async def track(self, device_id: int, start: datetime, end: datetime) -> list[FixIn]:
        self._history_reads += 1
        rows = await self._rows(SQL.track, device_id, schema.to_us(start), schema.to_us(end))
        return [_ROWS.fix(r) for r in rows]

    async def nearby(self, lat: float, lon: float, radius_m: float) -> list[LivePosition]:
        # A fleet is at most thousands of vehicles: a scan in Python is cheap and
        # spares SQLite a spatial extension.
        ranked = [
            (distance_m(lat, lon, p.fix.lat, p.fix.lon), p.device_id, p)
            for p in await self.live_positions()
        ]
        ranked.sort(key=lambda item: (item[0], item[1]))
        return [p for dist, _, p in ranked if dist <= radius_m]

    # static GTFS and routes (server/store/sqlite_gtfs.py) ------------------------------
    async def replace_feed(self, feed: Feed, version: str) -> FeedInfo:
        """On a connection of its own: a big feed takes a while, and meanwhile this
        store's connection keeps answering reads (WAL); writers wait for the commit.
        """
        if self._executor is None:
            raise RuntimeError("SqliteStore is not open")

        def work() -> FeedInfo:
            conn = schema.connect(self._path)
            try:
                return sqlite_gtfs.replace_feed(conn, feed, version)
            finally:
                conn.close()

        try:
            return await asyncio.to_thread(work)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF in _UNAVAILABLE_CODES:
                raise StoreUnavailable(f"SQLite unavailable: {exc}") from exc
            raise

    async def feed_info(self) -> FeedInfo | None:
        return await self._run(sqlite_gtfs.feed_info)

    async def load_feed(self) -> Feed | None:
        return await self._run(sqlite_gtfs.load_feed)

    async def list_routes(self) -> list[Route]:
        return await self._run(sqlite_gtfs.list_routes)

    async def get_route(self, route_id: str) -> Route | None:
        return await self._run(lambda c: sqlite_gtfs.get_route(c, route_id))

    async def add_route(self, route: Route) -> Route:
        return await self._run(lambda c: sqlite_gtfs.add_route(c, route))

    async def update_route(self, route_id: str, changes: Mapping[str, Any]) -> Route | None:
        return await self._run(lambda c: sqlite_gtfs.update_route(c, route_id, changes))

    async def delete_route(self, route_id: str) -> bool:
        return await self._run(lambda c: sqlite_gtfs.delete_route(c, route_id))

    async def raise_watermark(self, name: str, value: int) -> int:
        return await self._run(lambda c: sqlite_gtfs.raise_watermark(c, name, value))
