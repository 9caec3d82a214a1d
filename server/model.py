"""Plain records shared by ingest, the stores and the readers. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

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
class FleetInfo:
    """What the fleet model says of a device, read along with its live position.

    The vehicle it is installed in and what that serves (docs/fleet.md), its
    own offline threshold (None: OFFLINE_AFTER), what its agent last reported,
    and the last call refused with one of its withdrawn tokens.
    """

    vehicle_id: int | None = None
    vehicle: str | None = None  # the vehicle's label
    route_id: str | None = None
    trip_id: str | None = None
    offline_after_s: int | None = None
    agent_version: str | None = None
    backlog: int | None = None
    auth_error_at: datetime | None = None


NO_FLEET = FleetInfo()


@dataclass(frozen=True, slots=True)
class DeviceSeen:
    """A device's last heartbeat, with what readers need to list it."""

    device_id: int
    name: str
    seen: Seen
    route: str | None = None
    in_service: bool = True
    fleet: FleetInfo = NO_FLEET


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
    offline_after_s: int | None = None  # None: the server's OFFLINE_AFTER
    # The v1 body's agent object, latest; backlog_base: the backlog a while before.
    agent_version: str | None = None
    backlog: int | None = None
    agent_at: datetime | None = None
    backlog_base: int | None = None
    auth_error_at: datetime | None = None


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
    fleet: FleetInfo = NO_FLEET


@dataclass(frozen=True, slots=True)
class InsertResult:
    accepted: int
    duplicates: int
    # The vehicle's new live position when this batch moved it forward, else None.
    live: LivePosition | None = None


@dataclass(frozen=True, slots=True)
class DeviceView:
    """A device as the live views show it, position aside: what an operator's change moves."""

    device_id: int
    name: str
    route: str | None
    in_service: bool
    fleet: FleetInfo


@dataclass(frozen=True, slots=True)
class AgentReport:
    """The v1 body's ``agent`` object: who is sending and how much it still holds."""

    version: str | None
    backlog: int | None


@dataclass(frozen=True, slots=True)
class VehicleRecord:
    """A bus of the fleet, the unit installed in it and what it serves (docs/fleet.md)."""

    id: int
    label: str
    plate: str | None = None
    device_id: int | None = None
    route_id: str | None = None
    trip_id: str | None = None
    block_id: str | None = None
    service_date: str | None = None  # ISO date the assignment is for


@dataclass(frozen=True, slots=True)
class Share:
    """A public read-only link to one vehicle's live position; only its token's hash is kept."""

    id: int
    vehicle_id: int
    created_by: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One operator action: who did what to which record, and when."""

    at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str
    detail: dict[str, Any]
    id: int | None = None  # set once stored


@dataclass(frozen=True, slots=True)
class AuditMatch:
    """Which audit entries to list: each field set must equal the entry's (None: any);
    ``since`` and ``until`` bound its time, from ``since`` up to just before ``until``."""

    actor: str | None = None
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
