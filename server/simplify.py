"""Track simplification for long ranges. Pure: sequences of points in, indices out.

A week of 1 Hz fixes is 600,000 points: far more than a map can draw or a
phone can download. ``simplify`` keeps the points that matter for the shape
(Douglas-Peucker ranking) so the answer has at most ``max_points`` points,
always including the first and the last.

Distances are measured in metres on a local equirectangular projection around
the track's first point: exact enough for a city-sized track, and cheap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from server.vehicle import EARTH_RADIUS_M

# Ranking costs O(n log n) distance computations in pure Python. Longer tracks
# are first thinned evenly in time to this many candidates (a week at 1 Hz
# becomes one point every 30 s), which keeps a request well under a second;
# a bus needs more than 30 s to round a corner, so the shape survives.
MAX_CANDIDATES = 20_000


def project(lat: float, lon: float, lat0: float, lon0: float) -> tuple[float, float]:
    """``(x, y)`` in metres east and north of ``(lat0, lon0)``."""
    k = math.cos(math.radians(lat0))
    return (
        math.radians(lon - lon0) * k * EARTH_RADIUS_M,
        math.radians(lat - lat0) * EARTH_RADIUS_M,
    )


def segment_distance(
    p: tuple[float, float], a: tuple[float, float], b: tuple[float, float]
) -> float:
    """Distance from ``p`` to the segment ``a``-``b`` (not the infinite line).

    The segment matters for a bus that turns back on itself: on the infinite
    line a U-turn's far end would look like it lies "on" the track.
    """
    ax, ay = a
    dx, dy = b[0] - ax, b[1] - ay
    px, py = p[0] - ax, p[1] - ay
    length2 = dx * dx + dy * dy
    if length2 == 0.0:
        return math.hypot(px, py)
    s = max(0.0, min(1.0, (px * dx + py * dy) / length2))
    return math.hypot(px - s * dx, py - s * dy)


def even_indices(n: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``range(n)``, first and last included."""
    if k >= n:
        return list(range(n))
    if k <= 1:
        return [0] if n else []
    step = (n - 1) / (k - 1)
    return sorted({round(i * step) for i in range(k)})


def significance(xy: Sequence[tuple[float, float]]) -> list[float]:
    """Douglas-Peucker rank of each point: how far off the simplified line it lies.

    A point's value is capped by its parent's, so "the N most significant
    points" is the same set Douglas-Peucker would keep at some tolerance.
    Endpoints are infinitely significant. Iterative, so long tracks cannot
    exhaust the recursion limit.
    """
    n = len(xy)
    sig = [0.0] * n
    if n == 0:
        return sig
    sig[0] = sig[-1] = math.inf
    stack = [(0, n - 1, math.inf)]
    while stack:
        lo, hi, cap = stack.pop()
        if hi - lo < 2:
            continue
        best, best_d = lo + 1, -1.0
        a, b = xy[lo], xy[hi]
        for i in range(lo + 1, hi):
            d = segment_distance(xy[i], a, b)
            if d > best_d:
                best, best_d = i, d
        value = min(best_d, cap)
        sig[best] = value
        stack.append((lo, best, value))
        stack.append((best, hi, value))
    return sig


def simplify(points: Sequence[tuple[float, float]], max_points: int) -> list[int]:
    """Indices (ascending) of at most ``max_points`` points of ``(lat, lon)`` to keep.

    Returns every index when the track is short enough already.
    """
    n = len(points)
    if max_points < 2:
        raise ValueError("max_points must be at least 2")
    if n <= max_points:
        return list(range(n))
    candidates = even_indices(n, max(MAX_CANDIDATES, max_points))
    lat0, lon0 = points[0]
    xy = [project(points[i][0], points[i][1], lat0, lon0) for i in candidates]
    sig = significance(xy)
    ranked = sorted(range(len(candidates)), key=lambda j: (-sig[j], j))[:max_points]
    return sorted(candidates[j] for j in ranked)
