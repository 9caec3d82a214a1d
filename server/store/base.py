"""The storage boundary: one protocol, a SQLite and a PostGIS implementation."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

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


class Store(Protocol):
    async def open(self) -> None:
        """Connect and make sure the schema is current (migrating if allowed)."""

    async def close(self) -> None: ...

    async def migrate(self) -> list[str]:
        """Apply pending schema migrations (no open() needed); the names applied."""

    async def ping(self) -> None:
        """Raise StoreUnavailable when the database does not answer."""

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

    # telemetry ---------------------------------------------------------------
    async def insert_fixes(
        self, device_id: int, fixes: Sequence[FixIn], received_at: datetime
    ) -> InsertResult:
        """Store fixes idempotently by (device, t); durable when this returns.

        ``last_positions`` moves only to a fix newer than the one it holds.
        """

    async def live_positions(self) -> list[LivePosition]:
        """Every device's newest fix, with its last heartbeat (``seen``) when it has one."""

    # phones (OsmAnd) ---------------------------------------------------------------
    async def mark_seen(self, device_id: int, seen: Seen) -> None:
        """Record a request without a position; an older one never replaces a newer one.

        Raise LookupError for an unknown device.
        """

    async def seen_devices(self) -> list[DeviceSeen]:
        """The last heartbeat of every device that has sent one, by device id."""

    async def add_event(self, event: Event) -> Event | None:
        """Store an event (with its id), or None if this (device, t, kind) is stored already.

        Raise LookupError for an unknown device.
        """

    async def events(self, device_id: int, start: datetime, end: datetime) -> list[Event]:
        """The device's events with start <= t < end, oldest first."""

    async def track(self, device_id: int, start: datetime, end: datetime) -> list[FixIn]:
        """The device's fixes with start <= t < end, oldest first."""

    async def nearby(self, lat: float, lon: float, radius_m: float) -> list[LivePosition]:
        """Live positions within radius_m metres, nearest first."""
