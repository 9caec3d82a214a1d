"""The VehiclePositions builder, rule by rule (MobilityData gtfs-realtime-validator RULES.md)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from google.transit import gtfs_realtime_pb2 as rt

from server.gtfs.index import FeedIndex
from server.gtfs.parse import parse_feed
from server.gtfs.shapes import ShapeLine
from server.gtfs_rt.feed import FeedVehicle, build, header_time
from tests.server.gtfs_feeds import small_zip

INDEX = FeedIndex(parse_feed(io.BytesIO(small_zip())), "v1")
# 08:03 in Milan on a Wednesday: trip T1 (08:00-08:10, every day of 2026) is under way.
NOW = datetime(2026, 3, 11, 7, 3, tzinfo=UTC)


def bus(vid: str = "vA", lat: float = 45.4830, lon: float = 9.2135, **kw: object) -> FeedVehicle:
    values: dict[str, object] = dict(entity_id=vid, label="bus", lat=lat, lon=lon, bearing=90.0,
                                     speed=8.0, t=NOW - timedelta(seconds=5))  # fmt: skip
    values.update(kw)
    return FeedVehicle(**values)  # type: ignore[arg-type]


def test_header_full_dataset_v2_and_timestamps() -> None:
    # E038 (version "1.0"/"2.0"), E048 (header timestamp set), E049 (incrementality set),
    # E039 (no is_deleted in FULL_DATASET), W001 (entity timestamps), W002 (vehicle ids),
    # E001 (POSIX seconds), E012 (header >= every entity), E050 (not in the future).
    vehicles = [bus("vA"), bus("vB", t=NOW - timedelta(seconds=1))]
    header = header_time(vehicles, NOW, 0)
    message, _ = build(vehicles, None, NOW, header)
    parsed = rt.FeedMessage.FromString(message.SerializeToString())
    assert parsed.header.gtfs_realtime_version == "2.0"
    assert parsed.header.HasField("incrementality")
    assert parsed.header.incrementality == rt.FeedHeader.FULL_DATASET
    assert parsed.header.timestamp == int(NOW.timestamp())
    for entity in parsed.entity:
        assert not entity.HasField("is_deleted")
        assert entity.vehicle.HasField("timestamp") and entity.vehicle.vehicle.id == entity.id
        assert 1_000_000_000 < entity.vehicle.timestamp <= parsed.header.timestamp
    assert [e.id for e in parsed.entity] == ["vA", "vB"]


def test_header_never_goes_back_nor_below_an_entity() -> None:
    # E018: never lower than what was published; E012: never below the newest entity.
    assert header_time([bus()], NOW, floor=int(NOW.timestamp()) + 30) == int(NOW.timestamp()) + 30
    ahead = bus(t=NOW + timedelta(seconds=20))  # a bus clock a little ahead
    assert header_time([ahead], NOW, 0) == int(NOW.timestamp()) + 20


def test_stale_duplicate_and_invalid_vehicles_are_left_out() -> None:
    # Vehicles older than 90 s out; E052 (vehicle.id unique); E026 (lat/lon in range).
    vehicles = [bus("old", t=NOW - timedelta(seconds=91)), bus("vA"), bus("vA", lat=1.0),
                bus("bad", lat=95.0)]  # fmt: skip
    message, _ = build(vehicles, None, NOW, int(NOW.timestamp()))
    assert [e.id for e in message.entity] == ["vA"]
    assert abs(message.entity[0].vehicle.position.latitude - 45.4830) < 1e-5  # float32


def test_bearing_and_speed_are_in_range() -> None:
    # E027 (bearing 0..360) and W004 (unrealistic speed, > 26 m/s, left out).
    vehicles = [bus("a", bearing=-90.0, speed=40.0), bus("b", bearing=720.0, speed=-1.0),
                bus("c", bearing=None, speed=12.5)]  # fmt: skip
    message, _ = build(vehicles, None, NOW, int(NOW.timestamp()))
    a, b, c = (e.vehicle.position for e in message.entity)
    assert (a.bearing, b.bearing) == (270.0, 0.0) and not c.HasField("bearing")
    assert not a.HasField("speed") and not b.HasField("speed") and c.speed == 12.5


def test_a_trip_carries_start_date_time_and_its_route() -> None:
    # E003/E004 (ids exist in the static feed), W009 (schedule_relationship set); E023: start_time
    # is the first stop's arrival_time; start_date is the Milan service day.
    message, problems = build([bus(trip_id="T1", route_id="R1")], INDEX, NOW, int(NOW.timestamp()))
    trip = message.entity[0].vehicle.trip
    assert (trip.trip_id, trip.route_id, trip.start_date, trip.start_time) == (
        "T1", "R1", "20260311", "08:00:00")  # fmt: skip
    assert trip.HasField("schedule_relationship") and problems == []


def test_a_trip_past_midnight_belongs_to_the_day_it_started() -> None:
    # T2 runs 25:30-26:00: at 01:40 Milan time on 12 March it is the 11 March service.
    at = datetime(2026, 3, 12, 0, 40, tzinfo=UTC)
    message, _ = build([bus(lat=45.4745, lon=9.2050, t=at, trip_id="T2")], INDEX, at,
                       int(at.timestamp()))  # fmt: skip
    trip = message.entity[0].vehicle.trip
    assert (trip.start_date, trip.start_time, trip.route_id) == ("20260311", "25:30:00", "R2")


def test_no_service_day_no_trip() -> None:
    # 25 December is removed by calendar_dates: the bus is shown on its route, without the trip.
    xmas = datetime(2026, 12, 25, 7, 3, tzinfo=UTC)
    message, problems = build([bus(t=xmas, trip_id="T1", route_id="R1")], INDEX, xmas,
                              int(xmas.timestamp()))  # fmt: skip
    trip = message.entity[0].vehicle.trip
    assert not trip.trip_id and trip.route_id == "R1"
    assert [p.kind for p in problems] == ["trip_not_running"]


def test_off_shape_vehicle_is_flagged_and_published_without_its_trip() -> None:
    # E029: more than 200 m from the trip's shape. Published on its route, trip dropped, reported.
    far = bus(lat=45.4830, lon=9.2200, trip_id="T1", route_id="R1")
    message, problems = build([far], INDEX, NOW, int(NOW.timestamp()))
    trip = message.entity[0].vehicle.trip
    assert not trip.trip_id and trip.route_id == "R1"
    [problem] = problems
    assert problem.kind == "off_shape" and problem.distance_m is not None
    assert problem.distance_m > 200
    near = bus(trip_id="T1", route_id="R1")  # on Corso Buenos Aires
    assert ShapeLine(INDEX.shapes["SH1"]).distance_m(near.lat, near.lon) < 50


def test_unknown_routes_and_trips_are_not_published() -> None:
    # E003/E004 with a static feed loaded: ids the feed lacks are left out and reported.
    message, problems = build([bus("a", route_id="R404"), bus("b", trip_id="T404")], INDEX, NOW,
                              int(NOW.timestamp()))  # fmt: skip
    assert all(not e.vehicle.HasField("trip") for e in message.entity)
    assert sorted(p.kind for p in problems) == ["unknown_route", "unknown_trip"]
    # Without a static feed a route name is published as the operator gave it.
    message, _ = build([bus(route_id="7")], None, NOW, int(NOW.timestamp()))
    assert message.entity[0].vehicle.trip.route_id == "7"
