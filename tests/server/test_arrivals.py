"""When a bus reaches a stop (server/arrivals.py, server/gtfs/shapes.py): pure, no server.

Hand-built streets in Milan (a straight one, a loop, an out-and-back) and the
shared GTFS test feeds (../shared/gtfs: flatten_feed has shapes, good_feed none).
"""

from __future__ import annotations

import io
import itertools
import math
from datetime import UTC, datetime, timedelta

import pytest

from server.arrivals import (
    MAX_ETA_S,
    Arrival,
    Path,
    Position,
    ShapePaths,
    arrival,
    shapes_for,
)
from server.gtfs.index import FeedIndex
from server.gtfs.parse import parse_feed
from server.gtfs.shapes import LatLon, ShapeLine, place_stops
from server.vehicle import EARTH_RADIUS_M, distance_m
from tests.server.gtfs_feeds import shared_zip

NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
DEFAULT = 5.0  # m/s, 18 km/h
LAT0, LON0 = 45.4800, 9.2000
M_LAT = math.degrees(1 / EARTH_RADIUS_M)  # one metre north, in degrees
M_LON = M_LAT / math.cos(math.radians(LAT0))  # one metre east


def at(north: float, east: float = 0.0) -> LatLon:
    """A place ``north`` and ``east`` metres from (LAT0, LON0)."""
    return LAT0 + north * M_LAT, LON0 + east * M_LON


def bus(north: float, east: float = 0.0, *, speed: float | None = None,
        heading: float | None = None, age_s: float = 0.0) -> Position:  # fmt: skip
    lat, lon = at(north, east)
    return Position(lat, lon, NOW - timedelta(seconds=age_s), speed, heading)


# A street due north, 2 km, in points every 250 m; a stop at 1000 m.
STREET = ShapeLine([at(n) for n in range(0, 2001, 250)])
STOP = at(1000, 6)  # on the kerb, 6 m east of the street's middle
ON_STREET = [Path(STREET, (1000.0,))]


def coming(pos: Position, paths: list[Path] = ON_STREET, stop: LatLon = STOP) -> Arrival:
    return arrival(paths, stop, pos, NOW, DEFAULT)


def test_a_bus_before_the_stop_is_coming_with_the_distance_left_along_the_street() -> None:
    got = coming(bus(400, speed=10, heading=2))
    assert got.kind == "coming"
    assert got.distance_m == pytest.approx(600, abs=0.5)
    # Its own 10 m/s for 500 m, then the 5 m/s average for the last 100 m.
    assert got.eta_s == 50 + 20


def test_a_bus_past_the_stop_or_driving_away_from_it_is_not_coming() -> None:
    assert coming(bus(1100, speed=8, heading=0)).kind == "passed"
    assert coming(bus(1100)).kind == "passed"  # standing: past is past
    # Before the stop but driving south, away from it.
    assert coming(bus(400, speed=8, heading=181)).kind == "passed"
    # A slow bus's heading is noise: its place decides.
    assert coming(bus(400, speed=0.5, heading=181)).kind == "coming"


def test_a_bus_at_the_stop_is_due_and_one_just_past_is_still_at_it() -> None:
    assert coming(bus(1000, speed=0)) == Arrival("coming", 0.0, 0)
    assert coming(bus(1010, speed=0)) == Arrival("coming", 0.0, 0)
    assert coming(bus(1030, speed=0)).kind == "passed"


def test_a_bus_far_off_the_street_is_not_on_this_routes_path() -> None:
    # 400 m east: a parallel street, not this route.
    assert coming(bus(400, 400, speed=10, heading=0)) == Arrival("off_path")
    # 150 m off still counts (GPS in a canyon of buildings, a detour of a block).
    assert coming(bus(400, 150)).kind == "coming"


def test_speed_is_the_buses_own_only_when_it_moves_faster_than_the_average_and_plausibly() -> None:
    at_300 = 700.0  # metres left from 300 m
    slow = at_300 / DEFAULT
    assert coming(bus(300)).eta_s == round(slow)  # no speed reported
    assert coming(bus(300, speed=0)).eta_s == round(slow)  # at a light: it moves on
    assert coming(bus(300, speed=2)).eta_s == round(slow)  # crawling: not for the whole way
    assert coming(bus(300, speed=60)).eta_s == round(slow)  # 216 km/h is a bad fix
    assert coming(bus(300, speed=12.5)).eta_s == round(500 / 12.5 + 200 / DEFAULT)


def test_the_time_since_the_fix_counts_and_an_eta_is_never_negative_or_absurd() -> None:
    assert coming(bus(300, age_s=40)).eta_s == round(700 / DEFAULT) - 40
    assert coming(bus(900, age_s=100)).eta_s == 0  # it should be there by now: due
    assert coming(bus(900, age_s=-30)).eta_s == 20  # a fix "from the future": not earlier
    # A stale bus keeps its place in the list, but no time is claimed for it.
    stale = arrival(ON_STREET, STOP, bus(300), NOW, DEFAULT, fresh=False)
    assert stale == Arrival("coming", pytest.approx(700, abs=0.5), None)
    # 60 km along at 5 m/s is over three hours: a distance, not a time.
    long_road = ShapeLine([at(n) for n in range(0, 60_001, 5000)])
    far = arrival([Path(long_road, (60_000.0,))], at(60_000), bus(0), NOW, DEFAULT)
    assert far.kind == "coming" and far.eta_s is None and 60_000 / DEFAULT > MAX_ETA_S


def test_without_a_shape_the_distance_is_straight_and_nothing_is_left_out() -> None:
    got = arrival([], STOP, bus(1500), NOW, DEFAULT)
    assert got.kind == "straight_line" and got.eta_s is None
    assert got.distance_m == pytest.approx(distance_m(*STOP, *at(1500)), abs=0.01)


# -- loops and streets driven twice ---------------------------------------------------------

# A 500 m square from the terminal T (its south-west corner), anticlockwise: east, north,
# west, south; its trip calls at T, at the far corner and at T again.
SQUARE = ShapeLine([at(0), at(0, 500), at(500, 500), at(500), at(0)])
T = at(0, -5)


def test_a_loops_terminal_is_placed_at_both_ends() -> None:
    assert SQUARE.length_m == pytest.approx(2000, abs=0.5)
    placed = place_stops(SQUARE, [T, at(500, 505), T])
    assert placed == [pytest.approx(0, abs=0.5), pytest.approx(1000, abs=0.5),
                      pytest.approx(2000, abs=0.5)]  # fmt: skip


def test_a_bus_round_a_loop_is_coming_back_to_its_terminal() -> None:
    loop = [Path(SQUARE, (0.0, 2000.0))]
    # Three quarters round, driving south on the last side.
    got = arrival(loop, T, bus(300, speed=8, heading=180), NOW, DEFAULT)
    assert got.kind == "coming" and got.distance_m == pytest.approx(300, abs=0.5)
    # Just out of the terminal, driving east: it is coming back after the whole loop.
    out = arrival(loop, T, bus(0, 100, speed=8, heading=90), NOW, DEFAULT)
    assert out.distance_m == pytest.approx(1900, abs=0.5)
    # Standing at the terminal: due.
    assert arrival(loop, T, bus(0, 2), NOW, DEFAULT).eta_s == 0


def test_on_a_street_driven_out_and_back_the_way_the_bus_goes_decides() -> None:
    # North 1 km and back south on the same street; a stop each side at 300 m north.
    line = ShapeLine([at(0), at(500), at(1000), at(500), at(0)])
    out_side, back_side = at(300, 8), at(300, -8)
    placed = place_stops(line, [at(0), out_side, at(1000), back_side])
    assert placed[1] == pytest.approx(300, abs=0.5) and placed[3] == pytest.approx(1700, abs=0.5)
    outbound, inbound = Path(line, (placed[1] or 0,)), Path(line, (placed[3] or 0,))
    north_at_500 = bus(500, speed=8, heading=0)
    assert arrival([outbound], out_side, north_at_500, NOW, DEFAULT).kind == "passed"
    back = arrival([inbound], back_side, north_at_500, NOW, DEFAULT)
    assert back.kind == "coming" and back.distance_m == pytest.approx(1200, abs=0.5)
    south_at_500 = bus(500, speed=8, heading=180)
    assert arrival([inbound], back_side, south_at_500, NOW, DEFAULT).distance_m == (
        pytest.approx(200, abs=0.5)
    )


def test_a_bus_standing_on_a_street_both_ways_share_goes_the_way_it_last_drove() -> None:
    # One shape each way, as a feed has them; a stop on each side at 1000 m north.
    north_side, south_side = at(1000, 8), at(1000, -8)
    northbound = [Path(STREET, (1000.0,))]
    southbound = [Path(ShapeLine([at(n) for n in range(2000, -1, -250)]), (1000.0,))]
    # At a red light 400 m north, its GPS heading noise.
    standing = {"speed": 0.3, "heading": 200.0}
    unknown = bus(400, **standing)
    # Without a course either way is possible: it is coming north, and past going south.
    assert arrival(northbound, north_side, unknown, NOW, DEFAULT).kind == "coming"
    assert arrival(southbound, south_side, unknown, NOW, DEFAULT).kind == "passed"
    lat, lon = at(400)
    north = Position(lat, lon, NOW, course=5.0, **standing)
    assert arrival(northbound, north_side, north, NOW, DEFAULT).distance_m == pytest.approx(600)
    south = Position(lat, lon, NOW, course=182.0, **standing)
    assert arrival(northbound, north_side, south, NOW, DEFAULT).kind == "passed"
    # Moving, its own heading decides, whatever it drove before.
    turned = Position(lat, lon, NOW, speed=6.0, heading=0.0, course=182.0)
    assert arrival(northbound, north_side, turned, NOW, DEFAULT).kind == "coming"


def test_a_stop_far_from_the_shape_is_not_placed_on_it() -> None:
    assert place_stops(STREET, [at(0), at(1000, 900), at(2000)]) == [
        pytest.approx(0, abs=0.5), None, pytest.approx(2000, abs=0.5)
    ]  # fmt: skip


# -- the shared feeds -----------------------------------------------------------------------


def _index(name: str) -> FeedIndex:
    return FeedIndex(parse_feed(io.BytesIO(shared_zip(name))), name)


def test_along_a_real_feeds_shape_the_distance_follows_its_bends() -> None:
    index = _index("flatten_feed")
    points = index.shapes["shape_1"]  # (1,1) (2,4) (3,9) (4,16): segments of hundreds of km
    line = ShapeLine(points)
    legs = [distance_m(*a, *b) for a, b in itertools.pairwise(points)]
    assert line.length_m == pytest.approx(sum(legs), rel=0.005)

    def middle(a: LatLon, b: LatLon) -> LatLon:
        return (a[0] + b[0]) / 2, (a[1] + b[1]) / 2

    stop, start = middle(points[1], points[2]), middle(points[0], points[1])
    [spot] = line.locate(*stop)
    assert spot.off_m < 1 and spot.along_m == pytest.approx(legs[0] + legs[1] / 2, rel=0.005)
    got = arrival([Path(line, (spot.along_m,))], stop, Position(*start, NOW), NOW, DEFAULT)
    assert got.kind == "coming"
    assert got.distance_m == pytest.approx(legs[0] / 2 + legs[1] / 2, rel=0.005)
    assert got.eta_s is None  # hundreds of km: no time claimed
    # Heading back towards (1, 1), fast: not coming.
    away = Position(*start, NOW, speed=15, heading=250)
    assert arrival([Path(line, (spot.along_m,))], stop, away, NOW, DEFAULT).kind == "passed"


def test_a_feed_whose_shapes_miss_its_stops_falls_back_to_straight_distances() -> None:
    # flatten_feed's shapes lie off West Africa, its stops in Nevada.
    index = _index("flatten_feed")
    paths = ShapePaths(index)
    shapes = shapes_for(index, "route_1", None)
    assert shapes == ["shape_1"] and paths.paths(shapes, "stop2") == []
    stop = index.stops["stop2"]
    got = arrival(paths.paths(shapes, "stop2"), (stop.lat, stop.lon),
                  Position(36.9, -116.8, NOW), NOW, DEFAULT)  # fmt: skip
    assert got.kind == "straight_line" and got.eta_s is None
    # A trip of the route names its own shape; a trip of another route does not count.
    assert shapes_for(index, "route_2", "route_2_2") == ["shape_3"]
    assert shapes_for(index, "route_2", "route_1_1") == ["shape_2", "shape_3"]


def test_a_feed_without_shapes_gives_no_paths() -> None:
    index = _index("good_feed")
    assert index.shapes == {}
    [route, *_] = sorted(index.stop_routes["STAGECOACH"])
    assert ShapePaths(index).paths(shapes_for(index, route, None), "STAGECOACH") == []


def test_a_feeds_loop_terminal_is_found_at_both_ends_of_its_shape() -> None:
    # flatten_feed's route_8 is a cyclic pattern (stop1, stop2, stop3, stop1) without a
    # shape; give it one through its stops and its trip calls at stop1 twice.
    index = _index("flatten_feed")
    order = ["stop1", "stop2", "stop3", "stop1"]
    line = ShapeLine([(index.stops[s].lat, index.stops[s].lon) for s in order])
    placed = place_stops(line, [(index.stops[s].lat, index.stops[s].lon) for s in order])
    assert placed[0] == 0 and placed[3] == pytest.approx(line.length_m)
    assert 0 < (placed[1] or 0) < (placed[2] or 0) < line.length_m


def test_how_far_a_place_is_from_a_shape_of_any_length() -> None:
    # The GTFS-Realtime feed's off-shape check (E029) asks this of every trip's shape.
    street = ShapeLine([(45.0, 9.0), (45.0, 9.01)])
    assert street.distance_m(45.001, 9.005) == pytest.approx(
        distance_m(45.0, 9.005, 45.001, 9.005), rel=1e-3
    )
    assert street.distance_m(45.0, 9.005) == pytest.approx(0.0, abs=1e-6)
    point = ShapeLine([(45.0, 9.0)])
    assert point.distance_m(45.001, 9.0) == pytest.approx(
        distance_m(45.0, 9.0, 45.001, 9.0), rel=1e-3
    )
    assert ShapeLine([]).distance_m(45.0, 9.0) == math.inf
