"""``GET /gtfs-rt/vehicle-positions`` (public) and ``GET /v1/gtfs-rt/problems`` (operators)."""

from __future__ import annotations

from email.utils import formatdate, parsedate_to_datetime
from typing import Any

from litestar import Request, Response, get
from litestar.params import FromQuery

from server.access import access
from server.gtfs_rt.cache import Encoded, FeedCache
from server.http import ApiError, services
from server.transit import transit_cache
from server.vehicle import iso


def cache_control(max_age_s: int) -> str:
    """GTFS_RT_CACHE: short, so a CDN in front absorbs many consumers' polling while
    the feed stays well inside W008's 65 s; consumers poll every 10-30 s."""
    return f"public, max-age={max_age_s}" if max_age_s > 0 else "no-cache"


async def _encoded(request: Request[Any, Any, Any]) -> Encoded:
    cache: FeedCache = request.app.state.gtfs_rt
    hub = request.app.state.live.hub
    return await cache.current(hub, transit_cache(request), services(request).store)


def _not_modified(request: Request[Any, Any, Any], header_s: int) -> bool:
    since = request.headers.get("if-modified-since")
    if not since:
        return False
    try:
        return header_s <= parsedate_to_datetime(since).timestamp()
    except (TypeError, ValueError):
        return False  # an unreadable date: answer in full


@get("/gtfs-rt/vehicle-positions", tags=["gtfs-rt"], summary="GTFS-Realtime VehiclePositions",
     opt=access("public"))  # fmt: skip
async def vehicle_positions(
    request: Request[Any, Any, Any], format: FromQuery[str | None] = None
) -> Response[bytes]:
    if format not in (None, "json", "protobuf"):
        raise ApiError(422, "format: 'json' or 'protobuf'")
    encoded = await _encoded(request)
    headers = {
        "Last-Modified": formatdate(encoded.header_s, usegmt=True),
        "Cache-Control": cache_control(services(request).settings.live.gtfs_rt_cache_s),
        "Vary": "Accept-Encoding",
    }
    if _not_modified(request, encoded.header_s):
        return Response(b"", status_code=304, headers=headers)
    if format == "json":
        return Response(await encoded.json(), media_type="application/json", headers=headers)
    return Response(encoded.protobuf, media_type="application/x-protobuf", headers=headers)


@get("/v1/gtfs-rt/problems", tags=["gtfs-rt"],
     summary="Vehicles not published as assigned (off their trip's shape, unknown trip)",
     opt=access("operator"))  # fmt: skip
async def feed_problems(request: Request[Any, Any, Any]) -> dict[str, Any]:
    encoded = await _encoded(request)
    return {
        "problems": [
            {"vehicle_id": p.vehicle_id, "label": p.label, "kind": p.kind, "trip_id": p.trip_id,
             "route_id": p.route_id, "distance_m": p.distance_m, "t": iso(p.t)}
            for p in encoded.problems
        ]
    }  # fmt: skip


ROUTES = [vehicle_positions, feed_problems]
