"""server/simplify.py: pure track simplification."""

from __future__ import annotations

import itertools
import math

import pytest

from server.simplify import even_indices, project, segment_distance, significance, simplify


def straight(n: int) -> list[tuple[float, float]]:
    return [(45.0 + i * 1e-4, 9.0) for i in range(n)]


def test_short_tracks_come_back_whole() -> None:
    assert simplify([], 10) == []
    assert simplify(straight(1), 10) == [0]
    assert simplify(straight(10), 10) == list(range(10))


def test_never_more_than_asked_and_keeps_both_ends() -> None:
    for n in (11, 100, 5000, 30_000):
        keep = simplify(straight(n), 10)
        assert len(keep) <= 10
        assert keep[0] == 0 and keep[-1] == n - 1
        assert keep == sorted(set(keep))


def test_keeps_the_corner_of_an_l_shaped_route() -> None:
    # East for 500 points, then north for 500: the corner is the point that matters.
    east = [(45.0, 9.0 + i * 1e-4) for i in range(500)]
    north = [(45.0 + i * 1e-4, 9.0 + 499e-4) for i in range(1, 501)]
    keep = simplify(east + north, 3)
    assert keep == [0, 499, 999]


def test_u_turn_far_end_is_kept() -> None:
    # Out and back on the same street: on the infinite line through the ends the
    # turning point has distance zero; on the segment it is the farthest point.
    out = [(45.0, 9.0 + i * 1e-4) for i in range(100)]
    back = [(45.0, 9.0 + i * 1e-4) for i in range(98, -1, -1)]
    track = out + back
    keep = simplify(track, 3)
    assert 99 in keep


def test_zigzag_keeps_every_turn_when_room_allows() -> None:
    zig = [(45.0 + (i % 2) * 1e-3, 9.0 + i * 1e-3) for i in range(20)]
    dense: list[tuple[float, float]] = []
    for a, b in itertools.pairwise(zig):
        dense += [(a[0] + (b[0] - a[0]) * k / 10, a[1] + (b[1] - a[1]) * k / 10) for k in range(10)]
    dense.append(zig[-1])
    keep = simplify(dense, 20)
    assert len(keep) == 20
    for i, corner in zip(keep, zig, strict=True):
        assert dense[i] == pytest.approx(corner)


def test_geometry_helpers() -> None:
    x, y = project(45.001, 9.0, 45.0, 9.0)
    assert x == pytest.approx(0.0) and y == pytest.approx(111.2, abs=0.1)
    assert segment_distance((0, 5), (-1, 0), (1, 0)) == pytest.approx(5)
    assert segment_distance((3, 4), (-1, 0), (0, 0)) == pytest.approx(5)  # past the end
    assert segment_distance((3, 4), (0, 0), (0, 0)) == pytest.approx(5)  # a point
    assert even_indices(10, 3) == [0, 4, 9] or even_indices(10, 3) == [0, 5, 9]
    assert even_indices(3, 10) == [0, 1, 2]
    sig = significance([(0, 0), (1, 1), (2, 0)])
    assert math.isinf(sig[0]) and math.isinf(sig[2]) and sig[1] == pytest.approx(1)


def test_a_week_at_one_hertz_is_cut_to_size() -> None:
    # A loop route driven over and over: 604,800 fixes.
    n = 7 * 86400
    track = [(45.0 + 0.01 * math.sin(i / 600), 9.0 + 0.01 * math.cos(i / 600)) for i in range(n)]
    keep = simplify(track, 2000)
    assert len(keep) == 2000 and keep[0] == 0 and keep[-1] == n - 1


def test_rejects_a_useless_limit() -> None:
    with pytest.raises(ValueError):
        simplify(straight(5), 1)
