"""The storage boundary: what a store holds, one protocol per capability.

- ``Lifecycle``: connecting, migrating, the health check.
- ``Registry``: the small records kept for good: devices, users, this
  installation's values, heartbeats (``seen``) and events (SOS). No retention.
- ``Positions``: the fixes, high-volume and time-bound: ingest, the live
  position of every device, tracks, nearby vehicles.
- ``Maintenance``: keeping the store in shape (partitions, retention) and the
  figures /metrics shows (connection pool, group commit).

``Store`` is their union, and both stores (``sqlite.py``, ``postgis.py``)
implement all of it. A capability that has no meaning on one store is an
honest no-op there with an empty result, never a missing method: SQLite has
no partitions (``ensure_partitions`` returns ``[]``) and no pool
(``pool_stats`` returns None). Callers take the narrowest protocol they use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import NamedTuple, Protocol

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


class StoreUnavailable(Exception):
    """The database cannot be reached now; callers answer 503 with Retry-After."""


class Conflict(Exception):
    """A unique name (device or user) is already taken."""


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

    def pool_stats(self) -> PoolStats | None:
        """The connection pool's use; None without a pool (SQLite, or a closed PostGIS)."""

    def group_stats(self) -> GroupStats:
        """Group commit's totals since the store was built (server/store/groups.py)."""


class Store(Lifecycle, Registry, Positions, Maintenance, Protocol):
    """Everything a store holds; both stores implement all of it."""
