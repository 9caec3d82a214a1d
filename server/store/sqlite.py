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
import math
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

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
from server.store import sqlite_schema as schema
from server.store.base import Conflict, StoreUnavailable
from server.store.groups import Grouper, Job, insert_grouper

T = TypeVar("T")

_EARTH_RADIUS_M = 6_371_008.8  # mean radius; PostGIS uses the spheroid, close enough

# Primary result codes that mean "the file cannot be used right now" (locked
# past busy_timeout, disk full, I/O error, cannot open), not a bug in a query.
_UNAVAILABLE_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_READONLY}
_UNAVAILABLE_CODES |= {sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN}

_FIX_COLS = "fix_time, lat, lon, alt, speed, heading, hdop, sats, mode, accuracy, battery, charge"
# Numbered SQL files; file N brings PRAGMA user_version from N - 1 to N.
_DEVICE_COLS = "id, name, active, in_service, route"
_USER_COLS = "id, username, password_hash, role"
_LIVE_SELECT = f"""
SELECT lp.device_id, d.name, d.route, d.in_service, lp.received_at,
       {", ".join("lp." + c.strip() for c in _FIX_COLS.split(","))},
       s.seen_at, s.battery AS seen_battery, s.charge AS seen_charge
FROM last_positions lp JOIN devices d ON d.id = lp.device_id
LEFT JOIN device_seen s ON s.device_id = lp.device_id
"""
_SEEN_SELECT = """
SELECT s.device_id, d.name, d.route, d.in_service, s.seen_at,
       s.battery AS seen_battery, s.charge AS seen_charge
FROM device_seen s JOIN devices d ON d.id = s.device_id
"""
_MARK_SEEN = (
    "INSERT INTO device_seen (device_id, seen_at, battery, charge) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (device_id) DO UPDATE SET seen_at = excluded.seen_at,"
    " battery = excluded.battery, charge = excluded.charge"
    " WHERE excluded.seen_at > device_seen.seen_at"
)
_EVENT_COLS = "id, device_id, event_time, kind, received_at, lat, lon"


def _haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


@contextmanager
def _conflict_on_unique(message: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.IntegrityError as exc:
        if exc.sqlite_errorcode == sqlite3.SQLITE_CONSTRAINT_UNIQUE:
            raise Conflict(message) from exc
        raise


_KEEP_INSTALLATION_VALUE = (
    "INSERT INTO installation (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING"
)
_POSITION_COLS = f"device_id, received_at, {_FIX_COLS}"
_INSERT_POSITION = (
    f"INSERT INTO positions ({_POSITION_COLS}) VALUES ({', '.join('?' * 14)})"
    " ON CONFLICT (device_id, fix_time) DO NOTHING"
)
_MOVE_LAST = (
    f"INSERT INTO last_positions ({_POSITION_COLS}) VALUES ({', '.join('?' * 14)})"
    " ON CONFLICT (device_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _POSITION_COLS.split(", ")[1:])
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
        sql = _LIVE_SELECT + " WHERE lp.device_id = ?"
        live = schema.live(conn.execute(sql, (job.device_id,)).fetchone())
    return InsertResult(accepted=accepted, duplicates=len(job.fixes) - accepted, live=live)


class SqliteStore:
    def __init__(self, path: Path | str) -> None:
        self._path = Path(path)
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        # One writer: while it commits a group, the batches arriving form the next.
        self.groups: Grouper[Job, InsertResult] = insert_grouper(self._insert_group, max_running=1)

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
        await self.groups.drain()  # batches already taken in are stored before closing

        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await self._call(close)
        self._executor.shutdown(wait=True)
        self._executor = None

    async def ping(self) -> None:
        await self._run(lambda c: c.execute("SELECT count(*) FROM devices").fetchone())

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
                f" VALUES (?, ?, ?, ?) RETURNING {_DEVICE_COLS}",
                *(name, token_hash, route, schema.to_us(datetime.now(UTC))),
            )
        assert row is not None  # RETURNING always yields the inserted row
        return schema.device(row)

    async def device_by_token_hash(self, token_hash: str) -> Device | None:
        sql = f"SELECT {_DEVICE_COLS} FROM devices WHERE token_hash = ? AND active"
        row = await self._row(sql, token_hash)
        return None if row is None else schema.device(row)

    async def get_device(self, device_id: int) -> Device | None:
        row = await self._row(f"SELECT {_DEVICE_COLS} FROM devices WHERE id = ?", device_id)
        return None if row is None else schema.device(row)

    async def list_devices(self) -> list[Device]:
        return [
            schema.device(r)
            for r in await self._rows(f"SELECT {_DEVICE_COLS} FROM devices ORDER BY id")
        ]

    async def set_device_token(self, device_id: int, token_hash: str) -> bool:
        # A new token is a fresh credential, so it also re-activates a revoked device.
        sql = "UPDATE devices SET token_hash = ?, active = 1 WHERE id = ?"
        with _conflict_on_unique("token already in use"):
            return await self._changed(sql, token_hash, device_id)

    async def revoke_device(self, device_id: int) -> bool:
        return await self._changed("UPDATE devices SET active = 0 WHERE id = ?", device_id)

    async def installation_value(self, name: str, default: str) -> str:
        def keep(conn: sqlite3.Connection) -> str:
            with schema.transaction(conn):
                conn.execute(_KEEP_INSTALLATION_VALUE, (name, default))
                row = conn.execute("SELECT value FROM installation WHERE name = ?", (name,))
                return str(row.fetchone()[0])

        return await self._run(keep)

    async def update_device(
        self, device_id: int, *, in_service: bool | None = None, route: str | None = None
    ) -> Device | None:
        row = await self._row(
            "UPDATE devices SET in_service = coalesce(?, in_service),"
            f" route = coalesce(?, route) WHERE id = ? RETURNING {_DEVICE_COLS}",
            *(None if in_service is None else int(in_service), route, device_id),
        )
        return None if row is None else schema.device(row)

    # users -------------------------------------------------------------------
    async def add_user(self, username: str, password_hash: str, role: Role) -> User:
        with _conflict_on_unique(f"user name already in use: {username!r}"):
            row = await self._row(
                "INSERT INTO users (username, password_hash, role, created_at)"
                f" VALUES (?, ?, ?, ?) RETURNING {_USER_COLS}",
                *(username, password_hash, role, schema.to_us(datetime.now(UTC))),
            )
        assert row is not None  # RETURNING always yields the inserted row
        return schema.user(row)

    async def user_by_name(self, username: str) -> User | None:
        row = await self._row(f"SELECT {_USER_COLS} FROM users WHERE username = ?", username)
        return None if row is None else schema.user(row)

    async def get_user(self, user_id: int) -> User | None:
        row = await self._row(f"SELECT {_USER_COLS} FROM users WHERE id = ?", user_id)
        return None if row is None else schema.user(row)

    # telemetry ---------------------------------------------------------------
    async def insert_fixes(
        self, device_id: int, fixes: Sequence[FixIn], received_at: datetime
    ) -> InsertResult:
        if not fixes:
            return InsertResult(accepted=0, duplicates=0)
        return await self.groups.submit(Job(device_id, fixes, received_at))

    async def _insert_group(self, jobs: list[Job]) -> list[InsertResult]:
        # One transaction, so one fsync, for every batch that waited meanwhile.
        def work(conn: sqlite3.Connection) -> list[InsertResult]:
            with schema.transaction(conn):
                return [_insert_job(conn, job) for job in jobs]

        return await self._run(work)

    async def live_positions(self) -> list[LivePosition]:
        return [schema.live(r) for r in await self._rows(_LIVE_SELECT + " ORDER BY lp.device_id")]

    async def mark_seen(self, device_id: int, seen: Seen) -> None:
        charge = None if seen.charge is None else int(seen.charge)

        def work(conn: sqlite3.Connection) -> None:
            with schema.transaction(conn):
                conn.execute(_MARK_SEEN, (device_id, schema.to_us(seen.at), seen.battery, charge))

        try:
            await self._run(work)
        except sqlite3.IntegrityError as exc:
            raise LookupError(f"no device {device_id}") from exc

    async def seen_devices(self) -> list[DeviceSeen]:
        rows = await self._rows(_SEEN_SELECT + " ORDER BY s.device_id")
        return [schema.device_seen(r) for r in rows]

    async def add_event(self, event: Event) -> Event | None:
        def work(conn: sqlite3.Connection) -> sqlite3.Row | None:
            with schema.transaction(conn):
                row: sqlite3.Row | None = conn.execute(
                    "INSERT INTO events (device_id, event_time, kind, received_at, lat, lon)"
                    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
                    f" RETURNING {_EVENT_COLS}",
                    (event.device_id, schema.to_us(event.t), event.kind,
                     schema.to_us(event.received_at), event.lat, event.lon),
                ).fetchone()  # fmt: skip
                return row

        try:
            row = await self._run(work)
        except sqlite3.IntegrityError as exc:
            raise LookupError(f"no device {event.device_id}") from exc
        return None if row is None else schema.event(row)

    async def events(self, device_id: int, start: datetime, end: datetime) -> list[Event]:
        rows = await self._rows(
            f"SELECT {_EVENT_COLS} FROM events WHERE device_id = ?"
            " AND event_time >= ? AND event_time < ? ORDER BY event_time, id",
            *(device_id, schema.to_us(start), schema.to_us(end)),
        )
        return [schema.event(r) for r in rows]

    async def track(self, device_id: int, start: datetime, end: datetime) -> list[FixIn]:
        rows = await self._rows(
            f"SELECT {_FIX_COLS} FROM positions WHERE device_id = ?"
            " AND fix_time >= ? AND fix_time < ? ORDER BY fix_time",
            *(device_id, schema.to_us(start), schema.to_us(end)),
        )
        return [schema.fix(r) for r in rows]

    async def nearby(self, lat: float, lon: float, radius_m: float) -> list[LivePosition]:
        # A fleet is at most thousands of vehicles: a scan in Python is cheap and
        # spares SQLite a spatial extension.
        ranked = [
            (_haversine_m(lat, lon, p.fix.lat, p.fix.lon), p.device_id, p)
            for p in await self.live_positions()
        ]
        ranked.sort(key=lambda item: (item[0], item[1]))
        return [p for dist, _, p in ranked if dist <= radius_m]

    async def count_positions(self, device_id: int | None = None) -> int:
        if device_id is None:
            row = await self._row("SELECT count(*) FROM positions")
        else:
            row = await self._row("SELECT count(*) FROM positions WHERE device_id = ?", device_id)
        assert row is not None  # an aggregate always yields one row
        return int(row[0])
