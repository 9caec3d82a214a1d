"""The storage boundary: what a store holds, one protocol per capability.

- ``Lifecycle``: connecting, migrating, the health check.
- ``Registry``: the small records kept for good: devices, users, this
  installation's values, heartbeats (``seen``) and events (SOS). No retention.
- ``Positions``: the fixes, high-volume and time-bound: ingest, the live
  position of every device, tracks, nearby vehicles.
- ``Transit``: the static GTFS feed and the one list of routes (GTFS routes and
  operators' own), plus the watermarks the GTFS-Realtime feed never lets go back.
- ``Maintenance``: keeping the store in shape (partitions, retention) and the
  figures /metrics shows (connection pool, group commit).

``Store`` is their union, and both stores (``sqlite.py``, ``postgis.py``)
implement all of it. A capability that has no meaning on one store is an
honest no-op there with an empty result, never a missing method: SQLite has
no partitions (``ensure_partitions`` returns ``[]``) and no pool
(``pool_stats`` returns None). Callers take the narrowest protocol they use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, Literal, NamedTuple, Protocol

from server.gtfs.model import Feed, FeedInfo, Route
from server.model import (
    AgentReport,
    AuditEntry,
    AuditMatch,
    Device,
    DeviceSeen,
    DeviceView,
    Event,
    FixIn,
    InsertResult,
    LivePosition,
    Role,
    Seen,
    Share,
    User,
    VehicleRecord,
)  # fmt: skip


class StoreUnavailable(Exception):
    """The database cannot be reached now; callers answer 503 with Retry-After."""


class Conflict(Exception):
    """A unique name (device or user) is already taken."""


EnrollRefusal = Literal["unknown_code", "expired_code", "used_code"]


class EnrollmentRefused(Exception):
    """An enrollment code that cannot be redeemed, and which of the three reasons."""

    def __init__(self, reason: EnrollRefusal) -> None:
        super().__init__(reason)
        self.reason: EnrollRefusal = reason


# The fields of a vehicle an operator may change (``Fleet.update_vehicle``).
VEHICLE_FIELDS = ("label", "plate", "device_id", "route_id", "trip_id", "block_id", "service_date")


class LastAdmin(Exception):
    """The change would leave no admin: the last one cannot be demoted or deleted."""


class PoolStats(NamedTuple):
    """Connections of a pool: open, open and unused, the most it may open."""

    size: int
    idle: int
    max: int


class GroupStats(NamedTuple):
    """Group commit so far: statements (or transactions) run, and the batches they carried."""

    statements: int
    batches: int


class HistoryReads(NamedTuple):
    """History reads (tracks) so far, by where they ran: the primary or a read replica."""

    primary: int
    replica: int


@dataclass(frozen=True, slots=True)
class Expired:
    """What one retention run removed: whole daily partitions, and rows deleted one by one."""

    partitions: tuple[str, ...] = ()
    rows: int = 0  # not counting the rows of the dropped partitions


def retention_cutoff(now: datetime, older_than_days: int) -> datetime:
    """The first instant kept: midnight UTC ``older_than_days`` days before ``now``'s day.

    Whole UTC days, so both stores expire the same fixes: PostGIS drops the
    daily partitions before this day, SQLite deletes the rows before it.
    """
    day = now.astimezone(UTC).date() - timedelta(days=older_than_days)
    return datetime.combine(day, time(), UTC)


class Lifecycle(Protocol):
    async def open(self) -> None:
        """Connect and make sure the schema is current (migrating if allowed)."""

    async def close(self) -> None:
        """Store the batches already taken in, then disconnect."""

    async def migrate(self) -> list[str]:
        """Apply pending schema migrations (no open() needed); the names applied."""

    async def ping(self) -> None:
        """Raise StoreUnavailable when the database does not answer."""


class Registry(Protocol):
    async def installation_value(self, name: str, default: str) -> str:
        """This installation's ``name``; the first caller's ``default`` is stored and kept.

        Every process sharing the database gets the same value, whichever came first.
        """

    # devices -----------------------------------------------------------------
    async def add_device(self, name: str, token_hash: str, route: str | None = None) -> Device:
        """Raise Conflict when the name is taken."""

    async def device_by_token_hash(self, token_hash: str) -> Device | None:
        """Only active (not revoked) devices are found."""

    async def get_device(self, device_id: int) -> Device | None: ...

    async def list_devices(self) -> list[Device]: ...

    async def set_device_token(self, device_id: int, token_hash: str) -> bool:
        """Rotate: the old token stops working at once. False if no such device."""

    async def revoke_device(self, device_id: int) -> bool: ...

    async def update_device(
        self, device_id: int, *, in_service: bool | None = None, route: str | None = None
    ) -> Device | None: ...

    # users -------------------------------------------------------------------
    async def add_user(self, username: str, password_hash: str, role: Role) -> User:
        """Raise Conflict when the name is taken."""

    async def user_by_name(self, username: str) -> User | None: ...

    async def get_user(self, user_id: int) -> User | None: ...

    async def list_users(self) -> list[User]:
        """Every user, by id."""

    async def update_user(
        self, user_id: int, *, role: Role | None = None, password_hash: str | None = None
    ) -> User | None:
        """Change role and/or password (None keeps it).

        A new password also ends every sign-in of the user. None if no such user;
        raise LastAdmin when this would demote the last admin.
        """

    async def delete_user(self, user_id: int) -> bool:
        """Delete the user and their sign-ins; False if none; raise LastAdmin for the last admin."""

    # sign-ins: refresh token families ------------------------------------------
    async def start_session(self, family: str, user_id: int, jti: str, expires_at: int) -> None:
        """Record a new sign-in whose refresh token is ``jti`` (times: epoch seconds).

        Expired sign-ins are removed on the way.
        """

    async def rotate_session(
        self, family: str, jti: str, new_jti: str, expires_at: int, now: int
    ) -> int | None:
        """Replace the family's current refresh token ``jti`` by ``new_jti``; the user id.

        None when ``jti`` is not the family's current one (unknown, expired, signed
        out, or reused): a reused token also ends the family, so whoever holds
        the newer token of a stolen pair is signed out too.
        """

    async def end_session(self, family: str) -> bool:
        """Sign out: the family's tokens stop working. False if there was none."""

    async def session_user(self, family: str, now: int) -> User | None:
        """The user signed in as ``family`` as they are now; None once it ended or expired."""

    # phones (OsmAnd): heartbeats and events ------------------------------------
    async def mark_seen(self, device_id: int, seen: Seen) -> None:
        """Record a request without a position; an older one never replaces a newer one.

        Raise LookupError for an unknown device.
        """

    async def seen_devices(self) -> list[DeviceSeen]:
        """The last heartbeat of every device that has sent one, by device id."""

    async def add_event(self, event: Event) -> Event | None:
        """Store an event (with its id), or None if this (device, t, kind) is stored already.

        Raise LookupError for an unknown device. Retention never removes events.
        """

    async def events(self, device_id: int, start: datetime, end: datetime) -> list[Event]:
        """The device's events with start <= t < end, oldest first."""


class Fleet(Protocol):
    """What operators keep of their fleet (docs/fleet.md): enrollment, vehicles, shares, audit."""

    # devices: enrollment, thresholds, agents' reports, refused calls ----------------
    async def issue_enrollment_code(
        self, device_id: int, code_hash: str, now: datetime, expires_at: datetime
    ) -> bool:
        """Store a code for the device, replacing its unused ones; False if no such device."""

    async def redeem_enrollment_code(
        self, code_hash: str, token_hash: str, now: datetime
    ) -> Device:
        """Use the code once: the device gets ``token_hash`` (the old token is retired).

        Raise EnrollmentRefused: unknown_code, expired_code (expires_at <= now), used_code.
        """

    async def device_view(self, device_id: int) -> DeviceView | None:
        """The device as the live views show it (its vehicle, route, threshold, agent)."""

    async def set_offline_after(self, device_id: int, seconds: int | None) -> Device | None:
        """The device's own offline threshold; None returns it to OFFLINE_AFTER."""

    async def record_agent(
        self, device_id: int, report: AgentReport, at: datetime, base_before: datetime
    ) -> None:
        """Keep the agent's latest report; the one before becomes ``backlog_base`` when the
        base is older than ``base_before`` (so the base is about that old)."""

    async def note_auth_error(self, token_hash: str, at: datetime) -> int | None:
        """A call refused: if the token was a device's (revoked, or replaced), mark that
        device's ``auth_error_at`` and return its id; None for a token never issued."""

    async def fixes_between(self, start: datetime, end: datetime) -> int:
        """How many stored fixes have start <= t < end, over every device."""

    # vehicles ------------------------------------------------------------------------
    async def add_vehicle(self, label: str, plate: str | None) -> VehicleRecord:
        """Raise Conflict when the label is taken."""

    async def get_vehicle(self, vehicle_id: int) -> VehicleRecord | None: ...

    async def list_vehicles(self) -> list[VehicleRecord]: ...

    async def update_vehicle(
        self, vehicle_id: int, changes: dict[str, Any]
    ) -> VehicleRecord | None:
        """Apply ``changes`` (keys of VEHICLE_FIELDS; None clears). Installing a device
        takes it out of any other vehicle. Conflict for a taken label, LookupError for an
        unknown device, None for an unknown vehicle."""

    async def delete_vehicle(self, vehicle_id: int) -> bool: ...

    # share links -----------------------------------------------------------------------
    async def add_share(
        self, vehicle_id: int, token_hash: str, created_by: str, now: datetime, expires_at: datetime
    ) -> Share:
        """Raise LookupError for an unknown vehicle."""

    async def list_shares(self, vehicle_id: int) -> list[Share]:
        """Newest first, revoked and expired ones included."""

    async def share_by_token_hash(self, token_hash: str) -> Share | None: ...

    async def revoke_share(self, share_id: int, now: datetime) -> Share | None:
        """Revoke (once: a second revoke keeps the first time); None if no such share."""

    # audit -----------------------------------------------------------------------------
    async def add_audit(self, entry: AuditEntry) -> AuditEntry: ...

    async def audit_entries(
        self, limit: int, before: int | None = None, match: AuditMatch | None = None
    ) -> list[AuditEntry]:
        """Newest first; ``before``: only entries with a smaller id (the next page);
        ``match``: only entries equal to each of its fields that is set."""


class Positions(Protocol):
    async def insert_fixes(
        self, device_id: int, fixes: Sequence[FixIn], received_at: datetime
    ) -> InsertResult:
        """Store fixes idempotently by (device, t); durable when this returns.

        ``last_positions`` moves only to a fix newer than the one it holds.
        Raise LookupError for an unknown device.
        """

    async def live_positions(self) -> list[LivePosition]:
        """Every device's newest fix, with its last heartbeat (``seen``) when it has one."""

    async def track(self, device_id: int, start: datetime, end: datetime) -> list[FixIn]:
        """The device's fixes with start <= t < end, oldest first."""

    async def nearby(self, lat: float, lon: float, radius_m: float) -> list[LivePosition]:
        """Live positions within radius_m metres, nearest first."""


class Transit(Protocol):
    async def replace_feed(self, feed: Feed, version: str) -> FeedInfo:
        """Make ``feed`` the stored static feed, atomically.

        One transaction: readers see the old feed until it commits, and a
        failure leaves the old feed whole. Routes with source ``gtfs`` are
        replaced; operators' routes stay, unless the feed has one of the same
        id, which then becomes the feed's (routes are one list).
        """

    async def feed_info(self) -> FeedInfo | None:
        """The stored feed's version and counts; None before the first import."""

    async def load_feed(self) -> Feed | None:
        """The whole stored feed, every route included, read from one snapshot."""

    async def list_routes(self) -> list[Route]:
        """Every route, GTFS and operators', by route_id."""

    async def get_route(self, route_id: str) -> Route | None: ...

    async def add_route(self, route: Route) -> Route:
        """Add an operator's route; raise Conflict when the id is taken."""

    async def update_route(self, route_id: str, changes: Mapping[str, Any]) -> Route | None:
        """Change fields (``gtfs_sql.ROUTE_FIELDS``) of an operator's route; None if no such."""

    async def delete_route(self, route_id: str) -> bool:
        """Remove an operator's route; False if there is none (GTFS routes are never removed)."""

    async def raise_watermark(self, name: str, value: int) -> int:
        """Store ``max(stored, value)`` under ``name`` atomically and return it."""


class Maintenance(Protocol):
    async def ensure_partitions(
        self, now: datetime | None = None, *, days_behind: int = 2, days_ahead: int = 7
    ) -> list[str]:
        """Create the daily partitions around ``now`` that are missing; return their names.

        Call at start and periodically (daily is plenty: a week is created ahead).
        SQLite keeps positions in one table: nothing to create, always ``[]``.
        """

    async def expire_positions(self, older_than_days: int, now: datetime | None = None) -> Expired:
        """Remove the fixes before ``retention_cutoff(now, older_than_days)``.

        Only history goes: every device keeps its live position (``last_positions``
        is a table of its own) and events are kept. Bounded steps, so ingest
        is never held up for long; running it again removes nothing more.
        """

    def maintenance_lock(self) -> AbstractAsyncContextManager[bool]:
        """Try, without waiting, to become the one maintenance worker; yields whether it did.

        Held until the block ends, across processes and machines sharing the
        store: PostGIS a transaction-level advisory lock on a connection of its
        own (so it also holds through PgBouncer), SQLite an ``flock`` on a file
        next to the database.
        """

    async def refresh_statistics(self) -> None:
        """Update the planner's statistics of the position tables (ANALYZE)."""

    async def database_bytes(self) -> int:
        """What the database takes on disk, in bytes."""

    def history_reads(self) -> HistoryReads:
        """Where history reads went; all to the primary without ``DATABASE_READ_URL``."""

    def pool_stats(self) -> PoolStats | None:
        """The connection pool's use; None without a pool (SQLite, or a closed PostGIS)."""

    def group_stats(self) -> GroupStats:
        """Group commit's totals since the store was built (server/store/groups.py)."""


class Store(Lifecycle, Registry, Fleet, Positions, Transit, Maintenance, Protocol):
    """Everything a store holds; both stores implement all of it."""
