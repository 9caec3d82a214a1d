"""Points on a GTFS shape: how far along it a place is, and where a trip's stops fall. No I/O.

Each segment is measured on its own flat (equirectangular) projection around
its first point, so a point's foot on the segment is exact for any linear
interpolation of the segment's latitude and longitude, and lengths are within
a fraction of a percent of the great circle even for segments hundreds of
kilometres long; city shapes have segments of metres.

A place may be near a shape more than once (a loop's two ends, a street the
route takes out and back): ``locate`` returns every stretch of the shape that
passes near it, and ``place_stops`` picks, for a trip's stops in order, the
positions that go forward along the shape and are nearest in all.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from server.vehicle import EARTH_RADIUS_M

LatLon = tuple[float, float]

# Farther than this from a shape is not on it: GTFS-Realtime validator E029's
# buffer (TRIP_BUFFER_METERS), for arrivals and the feed's off-shape check alike.
NEAR_M = 200.0
# Two nearest points of one passage closer than this along the shape are one passage.
SAME_PASSAGE_M = 30.0
# Places located on one shape remembered: every rider at every stop asks about the same
# few buses' newest fixes, and a pass over a long shape takes milliseconds.
REMEMBERED = 4096
_M_PER_RAD = EARTH_RADIUS_M


@dataclass(frozen=True, slots=True)
class Spot:
    """A place's foot on the shape: metres from the shape's start, off it, and the way there."""

    along_m: float
    off_m: float
    bearing: float  # degrees clockwise from north of the shape at the foot


class ShapeLine:
    """A shape's points with each segment's flat vector and the distance run before it."""

    __slots__ = ("_located", "_segments", "length_m", "points")

    def __init__(self, points: Sequence[LatLon]) -> None:
        self.points = tuple(points)
        segments: list[tuple[float, float, float, float, float, float, float]] = []
        run = 0.0
        for (lat1, lon1), (lat2, lon2) in itertools.pairwise(self.points):
            k = math.cos(math.radians(lat1)) * _M_PER_RAD
            dx, dy = math.radians(lon2 - lon1) * k, math.radians(lat2 - lat1) * _M_PER_RAD
            length = math.hypot(dx, dy)
            segments.append((lat1, lon1, k, dx, dy, length, run))
            run += length
        self._segments = segments
        self.length_m = run
        self._located: dict[tuple[float, float, float], tuple[Spot, ...]] = {}

    def __len__(self) -> int:
        return len(self._segments)

    def _feet(self, lat: float, lon: float) -> list[Spot]:
        feet = []
        for lat1, lon1, k, dx, dy, length, run in self._segments:
            x, y = math.radians(lon - lon1) * k, math.radians(lat - lat1) * _M_PER_RAD
            span = length * length
            t = 0.0 if span == 0 else max(0.0, min(1.0, (x * dx + y * dy) / span))
            off = math.hypot(x - t * dx, y - t * dy)
            bearing = math.degrees(math.atan2(dx, dy)) % 360
            feet.append(Spot(run + t * length, off, bearing))
        return feet

    def distance_m(self, lat: float, lon: float) -> float:
        """How far the place is from the shape (from its point, for a one-point shape)."""
        if not self._segments:
            if not self.points:
                return math.inf
            (lat1, lon1) = self.points[0]
            k = math.cos(math.radians(lat1)) * _M_PER_RAD
            x, y = math.radians(lon - lon1) * k, math.radians(lat - lat1) * _M_PER_RAD
            return math.hypot(x, y)
        return min(foot.off_m for foot in self._feet(lat, lon))

    def locate(self, lat: float, lon: float, near_m: float = NEAR_M) -> tuple[Spot, ...]:
        """Every passage of the shape within ``near_m`` of the place: its nearest foot each.

        A passage is a local minimum of the distance along the shape; in order along it.
        """
        key = (lat, lon, near_m)
        found = self._located.get(key)
        if found is None:
            if len(self._located) >= REMEMBERED:
                self._located.clear()
            found = self._located[key] = tuple(self._passages(lat, lon, near_m))
        return found

    def _passages(self, lat: float, lon: float, near_m: float) -> list[Spot]:
        feet = self._feet(lat, lon)
        spots: list[Spot] = []
        for i, foot in enumerate(feet):
            if foot.off_m > near_m:
                continue
            # Ties are kept (a foot on a vertex is on two segments; a street driven out and
            # back ties everywhere) and merged below when they are one passage.
            if i > 0 and feet[i - 1].off_m < foot.off_m:
                continue
            if i + 1 < len(feet) and feet[i + 1].off_m < foot.off_m:
                continue
            if spots and foot.along_m - spots[-1].along_m < SAME_PASSAGE_M:
                if foot.off_m < spots[-1].off_m:
                    spots[-1] = foot
                continue
            spots.append(foot)
        return spots


# A stop placed (its index in the trip, metres along) and the stops placed before it.
_Placed = tuple[int, float, Any] | None


def place_stops(line: ShapeLine, stops: Sequence[LatLon]) -> list[float | None]:
    """Where a trip's stops (in trip order) fall along the shape, in metres; None: not near it.

    Each stop is near one or more passages; the positions chosen never go back along
    the shape and are the nearest in all (a stop left out costs as much as NEAR_M), so
    the terminal of a loop, first and last in its trip, lands at both ends.
    """
    # The cheapest placings so far, each ending at a position: (along, cost, placed-so-far).
    # A placing further along and dearer than another is never better: dropped.
    frontier: list[tuple[float, float, _Placed]] = [(-math.inf, 0.0, None)]
    for index, (lat, lon) in enumerate(stops):
        grown: list[tuple[float, float, _Placed]] = [
            (along, cost + NEAR_M, placed) for along, cost, placed in frontier
        ]
        for spot in line.locate(lat, lon):
            reachable = [s for s in frontier if s[0] <= spot.along_m]
            if reachable:
                _, cost, placed = min(reachable, key=lambda s: s[1])
                grown.append((spot.along_m, cost + spot.off_m, (index, spot.along_m, placed)))
        grown.sort(key=lambda s: (s[0], s[1]))
        frontier = []
        for state in grown:
            if not frontier or state[1] < frontier[-1][1]:
                frontier.append(state)
    result: list[float | None] = [None] * len(stops)
    placed = min(frontier, key=lambda s: s[1])[2]
    while placed is not None:
        index, along, rest = placed
        result[index] = along
        placed = rest
    return result
