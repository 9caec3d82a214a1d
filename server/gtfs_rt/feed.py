"""Building a VehiclePositions FeedMessage from plain records. No I/O.

Rules of the MobilityData gtfs-realtime-validator this builder keeps (RULES.md):
E026/E027 (coordinates, bearing in range), E028 (vehicles outside the
feed's area are left out and reported), E003/E004 (only trips and routes
the static feed has, when one is loaded), E029 (a vehicle more than 200 m off
its trip's shape is published without the trip and reported), W004 (no
unrealistic speed), W001/W002/W009 (timestamps, vehicle ids, the trip's
schedule_relationship are always set), E052 (one entity per vehicle id).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from google.transit import gtfs_realtime_pb2 as rt

from server.gtfs.index import FeedIndex
from server.gtfs.shapes import NEAR_M, ShapeLine

MAX_AGE_S = 90  # the default of GTFS_RT_MAX_AGE
AREA_BUFFER_M = 1609.0  # validator E028's REGION_BUFFER_METERS
MAX_SPEED_MS = 26.0  # validator W004's threshold: faster is a bad fix, not a bus
VERSION = "2.0"


@dataclass(frozen=True, slots=True)
class FeedVehicle:
    entity_id: str  # the public vehicle id, never a device id
    label: str
    lat: float
    lon: float
    bearing: float | None
    speed: float | None  # m/s
    t: datetime
    route_id: str | None = None
    trip_id: str | None = None


@dataclass(frozen=True, slots=True)
class Problem:
    """A vehicle not published as it was assigned (the operators' list)."""

    vehicle_id: str
    label: str
    kind: str  # "off_shape" | "unknown_trip" | "unknown_route" | "trip_not_running"
    t: datetime
    trip_id: str | None = None
    route_id: str | None = None
    distance_m: float | None = None


def build(
    vehicles: Iterable[FeedVehicle],
    index: FeedIndex | None,
    now: datetime,
    header_s: int,
    max_age_s: int = MAX_AGE_S,
) -> tuple[rt.FeedMessage, list[Problem]]:
    """The FULL_DATASET message of the vehicles at most ``max_age_s`` old at ``now``.

    The message is stamped ``header_s``.
    ``header_s`` is the caller's (``cache``): at least every entity's timestamp.
    """
    message = rt.FeedMessage()
    message.header.gtfs_realtime_version = VERSION
    message.header.incrementality = rt.FeedHeader.FULL_DATASET
    message.header.timestamp = header_s
    problems: list[Problem] = []
    seen: set[str] = set()
    for v in sorted(vehicles, key=lambda v: v.entity_id):
        age = (now - v.t).total_seconds()
        if v.entity_id in seen or age > max_age_s or age < -60:
            continue
        if (
            not (math.isfinite(v.lat) and math.isfinite(v.lon))
            or abs(v.lat) > 90
            or abs(v.lon) > 180
        ):
            continue
        if index is not None and not _in_area(v, index):
            # E028: outside the agency's area (a bus off to a garage far away, or a bad fix).
            problems.append(
                Problem(v.entity_id, v.label, "outside_area", v.t, v.trip_id, v.route_id)
            )
            continue
        seen.add(v.entity_id)
        entity = message.entity.add()
        entity.id = v.entity_id
        vp = entity.vehicle
        vp.vehicle.id = v.entity_id
        vp.vehicle.label = v.label
        vp.position.latitude = v.lat
        vp.position.longitude = v.lon
        if v.bearing is not None and math.isfinite(v.bearing):
            vp.position.bearing = v.bearing % 360.0
        if v.speed is not None and 0 <= v.speed <= MAX_SPEED_MS:
            vp.position.speed = v.speed
        vp.timestamp = min(int(v.t.timestamp()), header_s)
        route_id, trip, problem = _assignment(v, index)
        if problem is not None:
            problems.append(problem)
        if trip is not None:
            vp.trip.trip_id = trip[0]
            vp.trip.start_date, vp.trip.start_time = trip[1], trip[2]
            vp.trip.schedule_relationship = rt.TripDescriptor.SCHEDULED
        if route_id is not None:
            vp.trip.route_id = route_id
            if trip is None:
                vp.trip.schedule_relationship = rt.TripDescriptor.UNSCHEDULED
    return message, problems


def _in_area(v: FeedVehicle, index: FeedIndex) -> bool:
    """Within AREA_BUFFER_M of the box around the feed's stops and shapes."""
    if index.bounds is None:
        return True
    south, west, north, east = index.bounds
    dlat = AREA_BUFFER_M / 111_195.0
    dlon = dlat / max(0.01, math.cos(math.radians(v.lat)))
    return south - dlat <= v.lat <= north + dlat and west - dlon <= v.lon <= east + dlon


def _assignment(
    v: FeedVehicle, index: FeedIndex | None
) -> tuple[str | None, tuple[str, str, str] | None, Problem | None]:
    """What of the vehicle's route and trip may be published, and why not the rest."""
    if index is None:
        # No static feed: nothing to check a route against, and no trips to name.
        return v.route_id, None, None
    route_id = v.route_id
    if route_id is not None and route_id not in index.route_ids:
        return None, None, Problem(v.entity_id, v.label, "unknown_route", v.t, v.trip_id, route_id)
    if v.trip_id is None:
        return route_id, None, None
    trip = index.trips.get(v.trip_id)
    if trip is None:
        return (
            route_id,
            None,
            Problem(v.entity_id, v.label, "unknown_trip", v.t, v.trip_id, route_id),
        )
    start = index.trip_start(trip.trip_id, v.t)
    if start is None:
        kind = "trip_not_running"
        return trip.route_id, None, Problem(v.entity_id, v.label, kind, v.t, v.trip_id, route_id)
    shape = index.shapes.get(trip.shape_id or "")
    if shape:
        off = ShapeLine(shape).distance_m(v.lat, v.lon)
        if off > NEAR_M:
            problem = Problem(v.entity_id, v.label, "off_shape", v.t, v.trip_id, trip.route_id,
                              round(off, 1))  # fmt: skip
            return trip.route_id, None, problem
    return trip.route_id, (trip.trip_id, start.start_date, start.start_time), None


def header_time(vehicles: Iterable[FeedVehicle], now: datetime, floor: int) -> int:
    """The header timestamp: now, never below the newest entity nor below ``floor``."""
    newest = max((int(v.t.timestamp()) for v in vehicles), default=0)
    return max(int(now.astimezone(UTC).timestamp()), newest, floor)
