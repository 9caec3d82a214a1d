"""When a bus reaches a stop, from where it is on its route's shape. No I/O.

A distance and speed estimate, not a prediction from the schedule (there are
no TripUpdates): the bus and the stop are placed on the shapes of the bus's
trip (else of its route, docs/rider.md), and

- a bus that is further along than the stop (it passed it), or that drives
  against the shape's direction, is not coming (``passed``); a bus standing
  still goes the way it last drove when that was in the last minute, else
  either way;
- a bus more than ``NEAR_M`` from every shape serving the stop is not on this
  route's path (``off_path``): no claim about it;
- otherwise it is ``coming``: the distance left along the shape, and a time
  for it (``travel_s``), less the time since the fix;
- a route without shapes (or whose shapes miss the stop) gives the straight-line
  distance and no time (``straight_line``), and nothing is left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from server.gtfs.index import FeedIndex
from server.gtfs.shapes import LatLon, ShapeLine, place_stops
from server.vehicle import distance_m, moving_heading

MAX_SPEED_MS = 26.0  # faster is a bad fix, not a bus (GTFS-Realtime validator W004)
OWN_SPEED_M = 500.0  # how far a bus is assumed to keep a speed above the average
AT_STOP_M = 15.0  # a bus this little past the stop is still at it (GPS, the bus's length)
SAME_WAY_DEG = 90.0  # a heading within this of the shape's bearing goes its way
VEHICLE_SLACK_M = 30.0  # passages this much further than the nearest are other streets
MAX_ETA_S = 2 * 3600  # beyond it a distance/speed guess says nothing: no time is given

Kind = Literal["coming", "straight_line", "passed", "off_path"]


@dataclass(frozen=True, slots=True)
class Position:
    """What the estimate needs of a bus's newest fix."""

    lat: float
    lon: float
    t: datetime
    speed: float | None = None  # m/s
    heading: float | None = None  # degrees clockwise from north
    # Standing still, the way it last drove (server/vehicle.py's course_after), if recent.
    course: float | None = None


@dataclass(frozen=True, slots=True)
class Path:
    """A shape serving the stop and where along it the stop is (twice on some loops)."""

    line: ShapeLine
    stop_along: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Arrival:
    kind: Kind
    distance_m: float | None = None  # along the shape when coming, else straight
    eta_s: int | None = None


def travel_s(distance: float, speed: float | None, default_ms: float) -> float:
    """Seconds to drive ``distance``: the bus's own speed for OWN_SPEED_M, then the average.

    Own speed only when above the average and plausible: a bus at a light or a stop
    now is assumed to move on at the average, not to stay put.
    """
    own = default_ms
    if speed is not None and default_ms < speed <= MAX_SPEED_MS:
        own = speed
    first = min(distance, OWN_SPEED_M)
    return first / own + (distance - first) / default_ms


def eta_s(distance: float, pos: Position, now: datetime, default_ms: float) -> int | None:
    """Whole seconds from ``now`` (never negative), or None beyond MAX_ETA_S."""
    age = max(0.0, (now - pos.t).total_seconds())
    left = max(0.0, travel_s(distance, pos.speed, default_ms) - age)
    return None if left > MAX_ETA_S else round(left)


def _angle(a: float, b: float) -> float:
    d = abs(a - b) % 360
    return min(d, 360 - d)


def _left_on(path: Path, pos: Position) -> tuple[bool, float | None]:
    """(the bus is on this path, metres left to the stop or None when it is not coming)."""
    passages = path.line.locate(pos.lat, pos.lon)
    if not passages:
        return False, None
    nearest = min(s.off_m for s in passages)
    spots = [s for s in passages if s.off_m <= nearest + VEHICLE_SLACK_M]
    way = moving_heading(pos.speed, pos.heading)
    if way is None:
        way = pos.course
    if way is not None:
        spots = [s for s in spots if _angle(s.bearing, way) <= SAME_WAY_DEG]
    left = [
        max(0.0, stop - spot.along_m)
        for spot in spots
        for stop in path.stop_along
        if stop >= spot.along_m - AT_STOP_M
    ]
    return True, min(left, default=None)


def arrival(
    paths: Sequence[Path],
    stop: LatLon,
    pos: Position,
    now: datetime,
    default_ms: float,
    fresh: bool = True,
) -> Arrival:
    """How the bus at ``pos`` comes to the stop; ``fresh``: its fix is recent enough to time.

    With several paths (a route's directions, branches) the nearest arrival wins.
    """
    if not paths:
        return Arrival("straight_line", distance_m(stop[0], stop[1], pos.lat, pos.lon))
    on_path = False
    best: float | None = None
    for path in paths:
        on, left = _left_on(path, pos)
        on_path = on_path or on
        if left is not None and (best is None or left < best):
            best = left
    if best is None:
        return Arrival("passed" if on_path else "off_path")
    return Arrival("coming", best, eta_s(best, pos, now, default_ms) if fresh else None)


class ShapePaths:
    """The feed's shapes as ``ShapeLine`` with their stops placed, made on first use.

    Placing a shape's stops costs a pass over the shape per stop: ``prepare`` it
    off the event loop (server/transit.py); a feed version has one of these.
    """

    def __init__(self, index: FeedIndex) -> None:
        self.index = index
        self._placed: dict[str, tuple[ShapeLine, dict[str, tuple[float, ...]]]] = {}

    def missing(self, shape_ids: Iterable[str]) -> list[str]:
        return [s for s in shape_ids if s not in self._placed and s in self.index.shapes]

    def prepare(self, shape_ids: Iterable[str]) -> None:
        for shape_id in self.missing(shape_ids):
            line = ShapeLine(self.index.shapes[shape_id])
            order = [s for s in self.index.shape_stops.get(shape_id, []) if s in self.index.stops]
            where: dict[str, list[float]] = {}
            if len(line):
                alongs = place_stops(line, [self._at(s) for s in order])
                for stop_id, along in zip(order, alongs, strict=True):
                    if along is not None:
                        where.setdefault(stop_id, []).append(along)
            self._placed[shape_id] = (line, {k: tuple(v) for k, v in where.items()})

    def _at(self, stop_id: str) -> LatLon:
        stop = self.index.stops[stop_id]
        return stop.lat, stop.lon

    def paths(self, shape_ids: Iterable[str], stop_id: str) -> list[Path]:
        """The shapes among ``shape_ids`` that serve the stop (prepared first)."""
        self.prepare(shape_ids)
        found = []
        for shape_id in shape_ids:
            line, where = self._placed.get(shape_id, (None, {}))
            if line is not None and stop_id in where:
                found.append(Path(line, where[stop_id]))
        return found


def shapes_for(index: FeedIndex, route_id: str | None, trip_id: str | None) -> list[str]:
    """The bus's trip's shape when its trip is known and has one, else its route's shapes."""
    trip = index.trips.get(trip_id or "")
    if trip is not None and trip.route_id == route_id and trip.shape_id:
        return [trip.shape_id]
    return list(index.route_shape_ids.get(route_id or "", ()))
