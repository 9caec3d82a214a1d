"""Reads for operators: a vehicle's track as GeoJSON, and vehicles near a point.

Query values are parsed here rather than by Litestar so that every bad value
gets a 422 with a reason naming the parameter, like the rest of the API.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from litestar import Request, Response, get
from litestar.openapi.spec import OpenAPIType
from litestar.params import FromPath, QueryParameter

from server.access import access
from server.devices import MAX_ID
from server.gpx import export_filename, track_gpx
from server.http import ApiError, FromTime, ToTime, checked_range, query_time, services
from server.model import Device, FixIn
from server.simplify import simplify
from server.store.base import Registry
from server.vehicle import distance_m, iso, operator_view, vehicle_state

MAX_TRACK_RANGE = timedelta(days=7)
MAX_EXPORT_RANGE = timedelta(days=1)
DEFAULT_TRACK_RANGE = timedelta(hours=1)
DEFAULT_MAX_POINTS = 2000
MAX_POINTS_LIMIT = 10_000
MAX_RADIUS_M = 50_000.0


async def device_or_404(store: Registry, device_id: int, noun: str = "device") -> Device:
    """The device with ``device_id``, or a 404 naming it (ids past 64 bits included)."""
    device = await store.get_device(device_id) if 0 < device_id <= MAX_ID else None
    if device is None:
        raise ApiError(404, f"no {noun} with id {device_id}")
    return device


DEFAULT_RADIUS_M = 1000.0


def number_param(
    name: str, description: str, lo: float, hi: float, *, integer: bool = False
) -> QueryParameter:
    """Documented as a bounded number (so fuzzers and clients know), parsed by hand.

    Litestar would answer a malformed number with its own 400; parsing here keeps
    every bad value a 422 naming the parameter, like the rest of the API.
    """
    kind = OpenAPIType.INTEGER if integer else OpenAPIType.NUMBER
    return QueryParameter(
        name=name,
        description=description,
        schema_extra={"type": kind, "one_of": None, "minimum": lo, "maximum": hi},
    )


def query_number(name: str, value: str | None, lo: float, hi: float) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise ApiError(422, f"{name}: not a number: {value[:40]!r}") from None
    if not math.isfinite(number) or not lo <= number <= hi:
        raise ApiError(422, f"{name}: {value[:40]} outside {lo:g}..{hi:g}")
    return number


def track_range(
    start: datetime | None, end: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    """Fill in defaults (the last hour) and enforce order and the longest range."""
    if end is None:
        end = now if start is None else min(now, start + DEFAULT_TRACK_RANGE)
    if start is None:
        start = end - DEFAULT_TRACK_RANGE
    return checked_range(start, end, MAX_TRACK_RANGE)


def track_geojson(
    device_id: int, name: str, fixes: list[FixIn], start: datetime, end: datetime, max_points: int
) -> dict[str, Any]:
    """A FeatureCollection with one LineString (a Point for one fix, nothing for none).

    ``times`` runs parallel to the coordinates, so a client can animate the
    track or show when the bus passed a point.
    """
    keep = simplify([(f.lat, f.lon) for f in fixes], max_points)
    kept = [fixes[i] for i in keep]
    properties: dict[str, Any] = {
        "device_id": device_id,
        "name": name,
        "from": iso(start),
        "to": iso(end),
        "fixes": len(fixes),
        "points": len(kept),
        "simplified": len(kept) < len(fixes),
        "times": [iso(f.t) for f in kept],
    }
    coordinates = [[f.lon, f.lat] for f in kept]
    features: list[dict[str, Any]] = []
    geometry: dict[str, Any] | None = None
    if len(kept) >= 2:
        geometry = {"type": "LineString", "coordinates": coordinates}
    elif kept:
        geometry = {"type": "Point", "coordinates": coordinates[0]}
    if geometry is not None:
        features.append({"type": "Feature", "geometry": geometry, "properties": properties})
    # Repeated on the collection (a GeoJSON foreign member) so an empty track still
    # says which range was asked for.
    summary = {k: v for k, v in properties.items() if k != "times"}
    return {"type": "FeatureCollection", "features": features, "properties": summary}


@get(
    "/v1/vehicles/{device_id:int}/track",
    tags=["fleet"],
    summary="A vehicle's fixes between two times, as GeoJSON (simplified when long)",
    opt=access("viewer"),
)
async def vehicle_track(
    request: Request[Any, Any, Any],
    device_id: FromPath[int],
    start: FromTime = None,
    end: ToTime = None,
    max_points: Annotated[
        str | None,
        number_param("max_points", "default 2000", 2, MAX_POINTS_LIMIT, integer=True),
    ] = None,
) -> dict[str, Any]:
    svc = services(request)
    t0, t1 = track_range(query_time("from", start), query_time("to", end), datetime.now(UTC))
    limit = query_number("max_points", max_points, 2, MAX_POINTS_LIMIT)
    if limit is not None and not limit.is_integer():
        raise ApiError(422, "max_points: must be an integer")
    device = await device_or_404(svc.store, device_id, "vehicle")
    fixes = await svc.store.track(device_id, t0, t1)
    return track_geojson(device_id, device.name, fixes, t0, t1, int(limit or DEFAULT_MAX_POINTS))


@get(
    "/v1/vehicles/{device_id:int}/track.gpx",
    tags=["fleet"],
    summary="A vehicle's fixes between two times, every one, as a GPX file",
    opt=access("viewer"),
    media_type="application/gpx+xml",
)
async def vehicle_track_gpx(
    request: Request[Any, Any, Any],
    device_id: FromPath[int],
    start: FromTime = None,
    end: ToTime = None,
) -> Response[str]:
    svc = services(request)
    t0, t1 = track_range(query_time("from", start), query_time("to", end), datetime.now(UTC))
    # Unsimplified: a day at one fix a second is 86,400 points, 16 MB of GPX (D81).
    checked_range(t0, t1, MAX_EXPORT_RANGE)
    device = await device_or_404(svc.store, device_id, "vehicle")
    fixes = await svc.store.track(device_id, t0, t1)
    # A second of CPU for a long day: off the event loop, which serves the live streams.
    body = await asyncio.to_thread(track_gpx, device.name, fixes, t0, t1)
    name = export_filename(device.name, t0)
    return Response(body, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@get(
    "/v1/fleet/nearby",
    tags=["fleet"],
    summary="Vehicles within a radius of a point",
    opt=access("viewer"),
)
async def fleet_nearby(
    request: Request[Any, Any, Any],
    lat: Annotated[str | None, number_param("lat", "degrees (required)", -90, 90)] = None,
    lon: Annotated[str | None, number_param("lon", "degrees (required)", -180, 180)] = None,
    radius: Annotated[
        str | None, number_param("radius", "metres, default 1000", 1, MAX_RADIUS_M)
    ] = None,
) -> dict[str, Any]:
    svc = services(request)
    if lat is None or lon is None:
        raise ApiError(422, "lat and lon: required")
    y = query_number("lat", lat, -90, 90)
    x = query_number("lon", lon, -180, 180)
    r = query_number("radius", radius, 1, MAX_RADIUS_M)
    assert y is not None and x is not None
    radius_m = DEFAULT_RADIUS_M if r is None else r
    positions = await svc.store.nearby(y, x, radius_m)
    now = datetime.now(UTC)
    vehicles = []
    for pos in positions:
        limit = svc.settings.live.offline_after_s
        item = operator_view(pos, vehicle_state(pos, now, limit), limit)
        item["distance_m"] = round(distance_m(y, x, pos.fix.lat, pos.fix.lon), 1)
        vehicles.append(item)
    return {
        "center": {"lat": y, "lon": x},
        "radius_m": radius_m,
        "vehicles": vehicles,
        "generated_at": iso(now),
    }
