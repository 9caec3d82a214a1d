"""Plain records shared by ingest, the stores and the readers. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Role = Literal["admin", "operator", "viewer"]
ROLES: tuple[Role, ...] = ("admin", "operator", "viewer")


@dataclass(frozen=True, slots=True)
class FixIn:
    """A fix that passed validation; ``t`` is timezone-aware UTC."""

    t: datetime
    lat: float
    lon: float
    alt: float | None = None
    speed: float | None = None
    heading: float | None = None
    hdop: float | None = None
    sats: int | None = None
    mode: int | None = None
    # What phones report with a fix (OsmAnd): horizontal accuracy in metres,
    # battery in percent, and whether the phone is charging.
    accuracy: float | None = None
    battery: float | None = None
    charge: bool | None = None


@dataclass(frozen=True, slots=True)
class Seen:
    """A device's latest request without a position (a phone's heartbeat)."""

    at: datetime  # when the server received it
    battery: float | None = None
    charge: bool | None = None


@dataclass(frozen=True, slots=True)
class DeviceSeen:
    """A device's last heartbeat, with what readers need to list it."""

    device_id: int
    name: str
    seen: Seen
    route: str | None = None
    in_service: bool = True


@dataclass(frozen=True, slots=True)
class Event:
    """Something a device raised (``kind``: ``sos``), kept in its history."""

    device_id: int
    kind: str
    t: datetime  # when the device says it happened
    received_at: datetime
    lat: float | None = None
    lon: float | None = None
    id: int | None = None  # set once stored


@dataclass(frozen=True, slots=True)
class Device:
    id: int
    name: str
    active: bool = True  # False once its token is revoked
    in_service: bool = True  # operators may mark a bus out of service
    route: str | None = None


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    password_hash: str
    role: Role


@dataclass(frozen=True, slots=True)
class LivePosition:
    """The newest fix of one vehicle, as readers see it."""

    device_id: int
    name: str
    fix: FixIn
    received_at: datetime
    route: str | None = None
    in_service: bool = True
    # The device's last heartbeat, when it has sent any (see ``Seen``).
    seen: Seen | None = None


@dataclass(frozen=True, slots=True)
class InsertResult:
    accepted: int
    duplicates: int
    # The vehicle's new live position when this batch moved it forward, else None.
    live: LivePosition | None = None
