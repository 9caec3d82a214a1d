"""Reading agencies' GTFS zips: good feeds load whole, broken ones are refused saying where.

The shared feeds are transitfeed's test data (../shared/gtfs/README.md); where
our verdict differs from transitfeed's, the test says why.
"""

from __future__ import annotations

import io

import pytest

from server.gtfs.parse import GtfsError, parse_feed
from tests.server.gtfs_feeds import SMALL, shared_zip, small_zip, zipped


def refused(data: bytes) -> list[str]:
    with pytest.raises(GtfsError) as caught:
        parse_feed(io.BytesIO(data))
    return [str(p) for p in caught.value.problems]


def test_the_small_feed_loads_whole() -> None:
    feed = parse_feed(io.BytesIO(small_zip()))
    assert feed.timezone == "Europe/Rome"
    assert [(r.route_id, r.short_name, r.color) for r in feed.routes] == [
        ("R1", "1", "FF0000"), ("R2", "2", None)]  # fmt: skip
    assert [p.sequence for p in feed.shape_points] == [1, 2, 3]
    t2 = [st for st in feed.stop_times if st.trip_id == "T2"]
    assert [(st.arrival_s, st.departure_s) for st in t2] == [(91800, 91800), (93600, 93600)]
    assert feed.calendar_dates[0].exception_type == 2 and feed.warnings == ()


@pytest.mark.parametrize(("name", "routes", "shapes"), [
    ("good_feed", 5, 0),  # the GTFS reference sample
    ("flatten_feed", 8, 12),  # with shapes.txt
    ("utf8bom", 5, 0),  # files start with a byte-order mark
])  # fmt: skip
def test_the_shared_good_feeds_load(name: str, routes: int, shapes: int) -> None:
    feed = parse_feed(io.BytesIO(shared_zip(name)))
    assert len(feed.routes) == routes and len(feed.shape_points) == shapes
    assert all(r.route_id and not r.route_id.startswith("\ufeff") for r in feed.routes)


@pytest.mark.parametrize(("name", "message"), [
    ("missing_stops", "stops.txt: required file missing"),
    ("missing_trips", "trips.txt: required file missing"),
    ("missing_routes", "routes.txt: required file missing"),
    ("missing_column", "agency.txt line 1, field agency_name: required column missing"),
    ("bad_date_format",
     "calendar.txt line 2, field start_date: not a date as YYYYMMDD: '2007.01.01'"),
    ("undefined_stop",
     "stop_times.txt line 11, field stop_id: no such stop_id in stops.txt: 'NADAR'"),
    ("negative_stop_sequence",
     "stop_times.txt line 9, field stop_sequence: negative stop_sequence -2 in trip 'CITY2'"),
    ("duplicate_stop_sequence",
     "stop_times.txt line 4, field stop_sequence: duplicate stop_sequence 10 in trip 'CITY1'"
     " (first on line 3)"),
    # transitfeed only warns here; we refuse: a stop with an arrival and no departure is
    # a half-timed stop that riders' times and GTFS-RT start times would be built on.
    ("missing_departure_time",
     "stop_times.txt line 3, field departure_time: arrival_time without departure_time in trip"
     " 'CITY1'"),
    ("bad_utf8", "agency.txt line 1: not UTF-8 (byte 59)"),
    ("contains_null", "stops.txt line 9: contains a NUL character"),
])  # fmt: skip
def test_the_shared_broken_feeds_are_refused_naming_where(name: str, message: str) -> None:
    problems = refused(shared_zip(name))
    assert message in problems
    if name == "contains_null":
        # Only the cause: a file that cannot be read is not also "missing" every stop.
        assert problems == [message]


def test_duplicate_stop_feed_is_two_ids_at_one_place_and_is_only_warned() -> None:
    # The README says "two stops share a stop_id", but its stops.txt has BULLFROG and FROG,
    # two ids 0.3 m apart (transitfeed: a "stops too close" warning). GTFS allows it, so we
    # import with a warning; a stop_id used twice is refused (the next test).
    feed = parse_feed(io.BytesIO(shared_zip("duplicate_stop")))
    assert feed.warnings == (
        "stops.txt, field stop_id: stops 'BULLFROG' and 'FROG' are at one place",
    )


def test_a_stop_id_used_twice_is_refused_naming_the_id() -> None:
    stops = SMALL["stops.txt"] + "S1,Loreto again,45.4859,9.2161\n"
    assert refused(small_zip(**{"stops.txt": stops})) == [
        "stops.txt line 6, field stop_id: duplicate stop_id 'S1' (first on line 2)"]  # fmt: skip


def test_field_problems_name_file_line_and_field() -> None:
    routes = SMALL["routes.txt"].replace("ff0000", "red")
    stops = SMALL["stops.txt"].replace("45.4800", "145.48")
    times = SMALL["stop_times.txt"].replace("08:04:00,08:05:00", "8h04,08:05:00")
    problems = refused(small_zip(**{"routes.txt": routes, "stops.txt": stops,
                                    "stop_times.txt": times}))  # fmt: skip
    assert "routes.txt line 2, field route_color: not a colour as six hex digits: 'red'" in problems
    assert "stops.txt line 3, field stop_lat: 145.48 is out of range [-90, 90]" in problems
    assert "stop_times.txt line 3, field arrival_time: not a time as HH:MM:SS: '8h04'" in problems


def test_references_between_files_are_checked() -> None:
    trips = SMALL["trips.txt"] + "R9,ALL,T9,,,,\nR1,NOPE,T8,SH404,,,\n"
    problems = refused(small_zip(**{"trips.txt": trips}))
    assert "trips.txt line 4, field route_id: no such route_id in routes.txt: 'R9'" in problems
    assert (
        "trips.txt line 5, field service_id: no such service_id in calendar.txt or"
        " calendar_dates.txt: 'NOPE'"
    ) in problems
    assert "trips.txt line 5, field shape_id: no such shape_id in shapes.txt: 'SH404'" in problems


def test_not_a_zip_and_no_calendar_are_refused() -> None:
    assert refused(b"PK not really")[0].endswith("not a zip file: File is not a zip file")
    no_calendar = refused(small_zip(**{"calendar.txt": None, "calendar_dates.txt": None}))
    assert no_calendar[0] == "calendar.txt: calendar.txt or calendar_dates.txt is required"


def test_a_feed_zipped_inside_a_folder_loads() -> None:
    nested = zipped({f"feed/{name}": text for name, text in SMALL.items()})
    assert len(parse_feed(io.BytesIO(nested)).trips) == 2
