"""What one live client wants to see: a bounding box and/or routes, and ``since``. No I/O.

The same parsing serves query parameters (WebSocket and SSE connect) and the
``subscribe`` message, so a filter means the same thing on every transport.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

BBox = tuple[float, float, float, float]  # min_lon, min_lat, max_lon, max_lat

MAX_ROUTES = 200
MAX_ROUTE_LEN = 64


class FilterError(ValueError):
    """A filter parameter the client sent is malformed; the message says which."""


@dataclass(frozen=True, slots=True)
class Filter:
    bbox: BBox | None = None
    routes: frozenset[str] | None = None

    def matches(self, lat: float, lon: float, route: str | None) -> bool:
        if self.routes is not None and route not in self.routes:
            return False
        return self.bbox is None or in_bbox(self.bbox, lat, lon)

    def to_json(self) -> dict[str, Any]:
        return {
            "bbox": list(self.bbox) if self.bbox else None,
            "routes": sorted(self.routes) if self.routes is not None else None,
        }


def in_bbox(bbox: BBox, lat: float, lon: float) -> bool:
    min_lon, min_lat, max_lon, max_lat = bbox
    if not min_lat <= lat <= max_lat:
        return False
    if min_lon <= max_lon:
        return min_lon <= lon <= max_lon
    # A box drawn across the antimeridian (Fiji, Chukotka) wraps around.
    return lon >= min_lon or lon <= max_lon


def _number(value: object) -> float | None:
    # bool is an int subclass: [true, 0, 1, 1] is not a box.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def parse_bbox(value: object) -> BBox | None:
    """``[minLon, minLat, maxLon, maxLat]`` as a JSON list or ``"a,b,c,d"``; None/"" = no box."""
    if value is None or value == "":
        return None
    items: list[object]
    if isinstance(value, str):
        try:
            items = [float(part) for part in value.split(",")]
        except ValueError:
            raise FilterError("bbox: expected minLon,minLat,maxLon,maxLat numbers") from None
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise FilterError("bbox: expected [minLon, minLat, maxLon, maxLat]")
    numbers = [_number(v) for v in items]
    if len(numbers) != 4 or any(n is None for n in numbers):
        raise FilterError("bbox: expected 4 finite numbers [minLon, minLat, maxLon, maxLat]")
    min_lon, min_lat, max_lon, max_lat = (n for n in numbers if n is not None)
    if not (-180 <= min_lon <= 180 and -180 <= max_lon <= 180):
        raise FilterError("bbox: longitudes must be within -180..180")
    if not (-90 <= min_lat <= max_lat <= 90):
        raise FilterError("bbox: latitudes must be within -90..90 with minLat <= maxLat")
    return (min_lon, min_lat, max_lon, max_lat)


def parse_routes(value: object) -> frozenset[str] | None:
    """A JSON list of route names or ``"5,7"``; None, "" or [] = every route."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        items: list[object] = [part.strip() for part in value.split(",")]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise FilterError("routes: expected a list of route names")
    if not items:
        return None
    if len(items) > MAX_ROUTES:
        raise FilterError(f"routes: at most {MAX_ROUTES} routes")
    routes: set[str] = set()
    for item in items:
        if not isinstance(item, str) or not item or len(item) > MAX_ROUTE_LEN:
            raise FilterError(f"routes: each route is a name of 1..{MAX_ROUTE_LEN} characters")
        routes.add(item)
    return frozenset(routes)


def parse_since(value: str | None) -> datetime | None:
    """An ISO 8601 time (``Z`` or an offset; naive means UTC) or epoch seconds."""
    if value is None or value.strip() == "":
        return None
    raw = value.strip()
    try:
        number = float(raw)
    except ValueError:
        pass
    else:
        if not math.isfinite(number):
            raise FilterError("since: expected an ISO 8601 time or epoch seconds")
        return datetime.fromtimestamp(number, UTC)
    try:
        t = datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError:
        raise FilterError("since: expected an ISO 8601 time or epoch seconds") from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def filter_from_query(params: Mapping[str, str]) -> Filter:
    return Filter(bbox=parse_bbox(params.get("bbox")), routes=parse_routes(params.get("routes")))


def filter_from_message(message: Mapping[str, Any]) -> Filter:
    """A ``subscribe`` message replaces the whole filter: a key left out means no limit."""
    return Filter(bbox=parse_bbox(message.get("bbox")), routes=parse_routes(message.get("routes")))


@dataclass(frozen=True, slots=True)
class StreamOptions:
    filter: Filter
    since: datetime | None
    heartbeat_s: float


DEFAULT_HEARTBEAT_S = 15.0


def parse_heartbeat(value: str | None) -> float:
    """Seconds of silence before a heartbeat frame; 1..60, for proxies with short idle limits."""
    if value is None or value.strip() == "":
        return DEFAULT_HEARTBEAT_S
    try:
        seconds = float(value)
    except ValueError:
        raise FilterError("heartbeat: expected seconds between 1 and 60") from None
    if not 1 <= seconds <= 60:
        raise FilterError("heartbeat: expected seconds between 1 and 60")
    return seconds


def stream_options(params: Mapping[str, str], last_event_id: str | None = None) -> StreamOptions:
    """Options of a stream from its query; an SSE reconnect's Last-Event-ID stands for since."""
    since = params.get("since") or last_event_id
    return StreamOptions(
        filter=filter_from_query(params),
        since=parse_since(since),
        heartbeat_s=parse_heartbeat(params.get("heartbeat")),
    )
