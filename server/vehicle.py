"""What a vehicle is to everyone who reads it: its state, its views, its distances. No I/O.

One place for the vocabulary that ``/v1/fleet/live``, ``/v1/fleet/nearby``,
the live streams (``server/live/``) and, next, the GTFS-Realtime feed share:

- **State** (``vehicle_state``): ``online`` (a fix arrived within
  OFFLINE_AFTER), ``no_gps`` (no recent fix, but the device was heard from
  within OFFLINE_AFTER: a phone's heartbeat, or a report whose fix was
  refused), ``offline``, or ``out_of_service`` (set by an operator). Exactly
  OFFLINE_AFTER old still counts as fresh. A device's own threshold
  (``FleetInfo.offline_after_s``, set by an operator) replaces OFFLINE_AFTER.
- **Views**: ``operator_view`` is one vehicle as ``/v1/fleet/live`` lists it
  (also a device heard from that never sent a fix, with no position); the
  operator streams add ``in_service`` to it (``server/live/views.py``).
  ``public_view`` is what riders see under an opaque id.
- **Distance** (``distance_m``): great-circle metres between two points.
- **Course** (``course_after``): the way a vehicle last drove, kept while it
  stands (at a light, a stop) for COURSE_KEPT; a GPS heading below MOVING_MS
  is noise, and after a longer stop (a terminal's layover) it may leave
  either way.

The SQLite store ranks ``nearby`` with ``distance_m`` too. The agent keeps a
copy for its filters (``agent/pipeline.py``: the agent never imports the
server); keep it in step with ``distance_m``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from server.model import DeviceSeen, FixIn, LivePosition

VehicleState = Literal["online", "no_gps", "offline", "out_of_service"]

# What riders are told of each state: a bus heard from without GPS has no
# position worth showing, so it is offline to them; out of service is removal.
RIDER_STATES: dict[str, str] = {"online": "online", "offline": "offline", "no_gps": "offline"}

# The mean Earth radius (IUGG); PostGIS measures on the spheroid, within a
# metre of this for city radii.
EARTH_RADIUS_M = 6_371_008.8

MOVING_MS = 2.0  # slower, a GPS heading is noise
COURSE_KEPT = timedelta(seconds=60)  # a light's red; a longer stop may end facing either way

# Fields ``operator_view`` leaves empty for a device that never sent a fix.
_PLACE_FIELDS = ("lat", "lon", "t", "speed", "heading", "accuracy")


def iso(t: datetime) -> str:
    """A time as every answer and frame writes it: UTC, ISO 8601, ``Z``."""
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


# -- state -----------------------------------------------------------------------------------


def _fresh(at: datetime, now: datetime, offline_after_s: int) -> bool:
    return (now - at).total_seconds() <= offline_after_s


def threshold(vehicle: LivePosition | DeviceSeen, offline_after_s: int) -> int:
    """The device's own offline threshold, else the server's ``offline_after_s``."""
    return vehicle.fleet.offline_after_s or offline_after_s


def vehicle_state(
    vehicle: LivePosition | DeviceSeen, now: datetime, offline_after_s: int
) -> VehicleState:
    """online / no_gps / offline from the last fix's arrival and the last heartbeat.

    A ``DeviceSeen`` is a device that has only ever sent heartbeats: never online.
    """
    offline_after_s = threshold(vehicle, offline_after_s)
    if not vehicle.in_service:
        return "out_of_service"
    if isinstance(vehicle, LivePosition) and _fresh(vehicle.received_at, now, offline_after_s):
        return "online"
    seen = vehicle.seen
    if seen is not None and _fresh(seen.at, now, offline_after_s):
        return "no_gps"
    return "offline"


def fresh_until(pos: LivePosition, state: VehicleState, offline_after_s: int) -> datetime:
    """When a vehicle ``online`` (or ``no_gps``) stops being so if nothing new arrives.

    It follows from ``received_at`` (or the heartbeat's time) alone, so every
    process dates a state change the same.
    """
    offline_after_s = threshold(pos, offline_after_s)
    heard = pos.received_at
    if state == "no_gps" and pos.seen is not None:
        heard = pos.seen.at
    return heard + timedelta(seconds=offline_after_s)


def last_seen(vehicle: LivePosition | DeviceSeen) -> datetime:
    """When the device was last heard from: its newest fix's arrival or its last heartbeat."""
    if isinstance(vehicle, DeviceSeen):
        return vehicle.seen.at
    if vehicle.seen is None:
        return vehicle.received_at
    return max(vehicle.seen.at, vehicle.received_at)


# -- views -----------------------------------------------------------------------------------


def _power(pos: LivePosition) -> tuple[float | None, bool | None]:
    """Battery and charging from whichever is newer: the last fix or the last heartbeat."""
    seen = pos.seen
    newer = seen is not None and seen.at > pos.received_at
    if newer and seen is not None and (seen.battery is not None or seen.charge is not None):
        return seen.battery, seen.charge
    return pos.fix.battery, pos.fix.charge


def _fleet_view(vehicle: LivePosition | DeviceSeen, offline_after_s: int | None) -> dict[str, Any]:
    fleet = vehicle.fleet
    error = fleet.auth_error_at
    return {
        "vehicle": fleet.vehicle,
        "vehicle_id": fleet.vehicle_id,
        "route_id": fleet.route_id,
        "trip_id": fleet.trip_id,
        "agent_version": fleet.agent_version,
        "backlog": fleet.backlog,
        "offline_after_s": fleet.offline_after_s or offline_after_s,
        "auth_error_at": None if error is None else iso(error),
    }


def operator_view(
    vehicle: LivePosition | DeviceSeen, state: VehicleState, offline_after_s: int | None = None
) -> dict[str, Any]:
    """One vehicle as ``/v1/fleet/live`` lists it; position fields are null without a fix.

    ``offline_after_s``: the server's OFFLINE_AFTER, shown unless the device has its own.
    """
    place: dict[str, Any]
    received_at: str | None
    if isinstance(vehicle, DeviceSeen):
        place = dict.fromkeys(_PLACE_FIELDS)
        battery, charge = vehicle.seen.battery, vehicle.seen.charge
        received_at = None
    else:
        fix = vehicle.fix
        place = {
            "lat": fix.lat,
            "lon": fix.lon,
            "t": iso(fix.t),
            "speed": fix.speed,
            "heading": fix.heading,
            "accuracy": fix.accuracy,
        }
        battery, charge = _power(vehicle)
        received_at = iso(vehicle.received_at)
    return {
        "device_id": vehicle.device_id,
        "name": vehicle.name,
        "route": vehicle.route,
        **place,
        "battery": battery,
        "charge": charge,
        "received_at": received_at,
        "last_seen": iso(last_seen(vehicle)),
        "state": state,
        **_fleet_view(vehicle, offline_after_s),
    }


def public_view(pos: LivePosition, vid: str, state: VehicleState) -> dict[str, Any]:
    """What riders see of a vehicle in service, under its public id ``vid``.

    Its label is the vehicle's when the unit is installed in one, else the unit's name.
    """
    fix = pos.fix
    return {
        "id": vid,
        "label": pos.fleet.vehicle or pos.name,
        "route": pos.route,
        # The route riders filter on: the vehicle's assignment, else the device's (D41).
        "route_id": pos.route,
        "trip_id": pos.fleet.trip_id,
        "lat": fix.lat,
        "lon": fix.lon,
        "heading": fix.heading,
        "speed": fix.speed,
        "t": iso(fix.t),
        "state": RIDER_STATES.get(state, state),
    }


# -- distances -------------------------------------------------------------------------------


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine, on a sphere of ``EARTH_RADIUS_M``)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


@dataclass(frozen=True, slots=True)
class Course:
    """The heading of a vehicle's newest fix that moved, and that fix's time."""

    heading: float
    t: datetime


def moving_heading(speed: float | None, heading: float | None) -> float | None:
    """``heading`` when it says where the vehicle goes: at MOVING_MS or faster."""
    return heading if heading is not None and speed is not None and speed >= MOVING_MS else None


def course_after(previous: Course | None, fix: FixIn) -> Course | None:
    """The course once ``fix`` is the newest: its own heading when it moves, else
    ``previous`` while it is at most COURSE_KEPT older than ``fix``."""
    heading = moving_heading(fix.speed, fix.heading)
    if heading is not None:
        return Course(heading, fix.t)
    if previous is not None and timedelta(0) <= fix.t - previous.t <= COURSE_KEPT:
        return previous
    return None
