"""Transit reads for riders: a route with its shapes and stops, stops near a point, one stop.

``GET /v1/routes/{route_id}``, ``GET /v1/stops/near``, ``GET /v1/stops/{stop_id}``,
all public. They read the imported feed through ``TransitCache``: one
``FeedIndex`` per process, rebuilt when another import (by any process) changed
the stored feed's version. The route list itself is ``server/routes_api.py``; when a
stop's buses arrive is ``server/arrivals.py``.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Request, get
from litestar.params import FromQuery, Parameter

from server.access import access
from server.arrivals import Position, ShapePaths, arrival, shapes_for
from server.gtfs.index import FeedIndex
from server.gtfs.model import Route
from server.http import ApiError, services
from server.store.base import Transit
from server.vehicle import RIDER_STATES, public_view

MAX_NEAR = 50
# GTFS ids are text of any reasonable length; bounding them gives a clear 400 (and lets
# the schema say what is valid, so fuzzing finds invalid ids quickly).
MAX_ID = 255
RouteId = Annotated[str, Parameter(min_length=1, max_length=MAX_ID)]
StopId = Annotated[str, Parameter(min_length=1, max_length=MAX_ID)]


class TransitCache:
    """The stored feed's index, rebuilt when the stored version changes."""

    def __init__(self) -> None:
        self._index: FeedIndex | None = None
        self._paths: ShapePaths | None = None
        self._lock = asyncio.Lock()

    async def index(self, store: Transit) -> FeedIndex | None:
        info = await store.feed_info()
        if info is None:
            self._index = None
            return None
        if self._index is not None and self._index.version == info.version:
            return self._index
        async with self._lock:
            if self._index is None or self._index.version != info.version:
                feed = await store.load_feed()
                # Built off the event loop: a big feed takes a moment.
                self._index = None if feed is None else await asyncio.to_thread(
                    FeedIndex, feed, info.version
                )  # fmt: skip
        return self._index

    async def paths(self, index: FeedIndex, shape_ids: set[str]) -> ShapePaths:
        """The index's shapes with their stops placed, the ones ``shape_ids`` names first."""
        if self._paths is None or self._paths.index is not index:
            self._paths = ShapePaths(index)
        paths = self._paths
        if paths.missing(shape_ids):
            # Placing a long shape's stops takes a moment: off the event loop.
            await asyncio.to_thread(paths.prepare, shape_ids)
        return paths


def transit_cache(request: Request[Any, Any, Any]) -> TransitCache:
    cache: TransitCache = request.app.state.transit
    return cache


def route_json(route: Route) -> dict[str, Any]:
    return {
        "route_id": route.route_id,
        "short_name": route.short_name,
        "long_name": route.long_name,
        "color": route.color,
        "text_color": route.text_color,
        "type": route.type,
        # Who may change it: "operator" routes here, "gtfs" ones by changing the feed.
        "source": route.source,
    }


def _stop_json(stop: Any) -> dict[str, Any]:
    return {"stop_id": stop.stop_id, "name": stop.name, "lat": stop.lat, "lon": stop.lon}


@get("/v1/routes/{route_id:str}", tags=["transit"], summary="A route with its shapes and stops",
     opt=access("public"))  # fmt: skip
async def route_detail(request: Request[Any, Any, Any], route_id: RouteId) -> dict[str, Any]:
    svc = services(request)
    route = await svc.store.get_route(route_id)
    if route is None:
        raise ApiError(404, f"no route {route_id!r}")
    index = await transit_cache(request).index(svc.store)
    shapes = index.route_shapes(route_id) if index else []
    stops = index.stops_of_route(route_id) if index else []
    return {
        **route_json(route),
        "shapes": [[[lat, lon] for lat, lon in shape] for shape in shapes],
        "stops": [_stop_json(s) for s in stops],
    }


def _coordinate(value: float, name: str, bound: float) -> float:
    if not math.isfinite(value) or abs(value) > bound:
        raise ApiError(422, f"{name}: must be a number within ±{bound:g}")
    return value


@get("/v1/stops/near", tags=["transit"], summary="The stops nearest a place",
     opt=access("public"))  # fmt: skip
async def stops_near(
    request: Request[Any, Any, Any],
    lat: FromQuery[float],
    lon: FromQuery[float],
    limit: FromQuery[int] = 10,
) -> list[dict[str, Any]]:
    lat, lon = _coordinate(lat, "lat", 90), _coordinate(lon, "lon", 180)
    if not 1 <= limit <= MAX_NEAR:
        raise ApiError(422, f"limit: must be 1 to {MAX_NEAR}")
    index = await transit_cache(request).index(services(request).store)
    if index is None:
        return []
    return [
        {**_stop_json(stop), "distance_m": round(dist, 1),
         "routes": index.stop_routes.get(stop.stop_id, [])}
        for dist, stop in index.near(lat, lon, limit)
    ]  # fmt: skip


@get("/v1/stops/{stop_id:str}", tags=["transit"], summary="A stop and the buses coming",
     opt=access("public"))  # fmt: skip
async def stop_detail(request: Request[Any, Any, Any], stop_id: StopId) -> dict[str, Any]:
    cache = transit_cache(request)
    svc = services(request)
    index = await cache.index(svc.store)
    stop = index.stops.get(stop_id) if index else None
    if index is None or stop is None:
        raise ApiError(404, f"no stop {stop_id!r}")
    routes = index.stop_routes.get(stop_id, [])
    vehicles = [
        v for v in request.app.state.live.hub.vehicles.values()
        if v.pos.in_service and v.state in RIDER_STATES and v.pos.route in routes
    ]  # fmt: skip
    wanted = {s for v in vehicles for s in shapes_for(index, v.pos.route, v.pos.fleet.trip_id)}
    paths = await cache.paths(index, wanted)
    default_ms = svc.settings.live.arrival_speed_kmh / 3.6
    now = datetime.now(UTC)
    buses = []
    for vehicle in vehicles:
        pos = vehicle.pos
        shapes = shapes_for(index, pos.route, pos.fleet.trip_id)
        fix = pos.fix
        coming = arrival(
            paths.paths(shapes, stop_id), (stop.lat, stop.lon),
            Position(fix.lat, fix.lon, fix.t, fix.speed, fix.heading,
                     vehicle.course.heading if vehicle.course else None), now, default_ms,
            fresh=vehicle.state == "online",
        )  # fmt: skip
        if coming.distance_m is None:
            continue  # passed the stop, going the other way, or not on this route's path
        view = public_view(pos, vehicle.public_id, vehicle.state)
        buses.append({
            key: view[key] for key in ("id", "label", "route_id", "lat", "lon", "t", "state")
        } | {
            "distance_m": round(coming.distance_m, 1),
            # Along the route's shape, or as the crow flies when it has none to go by.
            "distance_kind": "straight_line" if coming.kind == "straight_line" else "along_route",
            "eta_s": coming.eta_s,
        })  # fmt: skip
    buses.sort(key=lambda b: (b["eta_s"] is None, b["eta_s"] or 0, b["distance_m"], b["id"]))
    return {**_stop_json(stop), "routes": routes, "buses": buses}


ROUTES = [route_detail, stops_near, stop_detail]
