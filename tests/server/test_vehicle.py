"""The vehicle vocabulary (server/vehicle.py): states at their edges, views' fields, distances."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest

from server.live.views import stream_operator_view
from server.model import DeviceSeen, FixIn, LivePosition, Seen
from server.vehicle import (
    COURSE_KEPT,
    EARTH_RADIUS_M,
    Course,
    course_after,
    distance_m,
    fresh_until,
    iso,
    last_seen,
    operator_view,
    public_view,
    vehicle_state,
)
from tests.server.live_client import PUBLIC_VEHICLE_KEYS

NOW = datetime(2026, 11, 29, 8, 0, 0, tzinfo=UTC)
LIMIT = 120  # OFFLINE_AFTER, seconds
TICK = timedelta(microseconds=1)

# What /v1/fleet/live lists of each vehicle, in this order (pinned by the API tests too).
FLEET_FIELDS = [
    "device_id",
    "name",
    "route",
    "lat",
    "lon",
    "t",
    "speed",
    "heading",
    "accuracy",
    "battery",
    "charge",
    "received_at",
    "last_seen",
    "state",
]
# What the fleet model adds (docs/fleet.md): the vehicle, its assignment, the agent.
FLEET_MODEL_FIELDS = [
    "vehicle",
    "vehicle_id",
    "route_id",
    "trip_id",
    "agent_version",
    "backlog",
    "offline_after_s",
    "auth_error_at",
]
FLEET_FIELDS += FLEET_MODEL_FIELDS
PUBLIC_FIELDS = list(PUBLIC_VEHICLE_KEYS)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def position(
    received: datetime = NOW,
    seen: Seen | None = None,
    in_service: bool = True,
    battery: float | None = 80.0,
) -> LivePosition:
    fix = FixIn(
        t=received - timedelta(seconds=1),
        lat=45.4651,
        lon=9.1909,
        alt=120.0,
        speed=6.4,
        heading=45.0,
        accuracy=7.5,
        battery=battery,
        charge=False,
    )
    return LivePosition(7, "bus-7", fix, received, route="5", in_service=in_service, seen=seen)


def heartbeats_only(at: datetime, in_service: bool = True) -> DeviceSeen:
    return DeviceSeen(9, "phone-9", Seen(at, 12.0, True), route=None, in_service=in_service)


# -- states ----------------------------------------------------------------------------------


def test_a_fix_exactly_offline_after_old_is_still_online() -> None:
    assert vehicle_state(position(received=ago(LIMIT)), NOW, LIMIT) == "online"
    assert vehicle_state(position(received=ago(LIMIT) - TICK), NOW, LIMIT) == "offline"
    assert vehicle_state(position(received=NOW), NOW, LIMIT) == "online"


def test_no_gps_needs_a_recent_heartbeat_and_a_stale_fix() -> None:
    stale = ago(LIMIT) - TICK
    recent = Seen(ago(5), battery=64.0, charge=True)
    assert vehicle_state(position(received=stale, seen=recent), NOW, LIMIT) == "no_gps"
    # The heartbeat's edge is the fix's: exactly OFFLINE_AFTER is still heard.
    edge = Seen(ago(LIMIT))
    assert vehicle_state(position(received=stale, seen=edge), NOW, LIMIT) == "no_gps"
    gone = Seen(ago(LIMIT) - TICK)
    assert vehicle_state(position(received=stale, seen=gone), NOW, LIMIT) == "offline"
    # A fresh fix is online whatever the heartbeat says.
    assert vehicle_state(position(received=ago(1), seen=recent), NOW, LIMIT) == "online"


def test_out_of_service_wins_over_everything() -> None:
    assert vehicle_state(position(in_service=False), NOW, LIMIT) == "out_of_service"
    silent = position(received=ago(3600), in_service=False)
    assert vehicle_state(silent, NOW, LIMIT) == "out_of_service"
    assert vehicle_state(heartbeats_only(NOW, in_service=False), NOW, LIMIT) == "out_of_service"


def test_a_device_without_a_fix_is_no_gps_or_offline_never_online() -> None:
    assert vehicle_state(heartbeats_only(NOW), NOW, LIMIT) == "no_gps"
    assert vehicle_state(heartbeats_only(ago(LIMIT)), NOW, LIMIT) == "no_gps"
    assert vehicle_state(heartbeats_only(ago(LIMIT) - TICK), NOW, LIMIT) == "offline"


def test_fresh_until_is_the_last_moment_of_the_state() -> None:
    online = position(received=ago(30))
    until = fresh_until(online, "online", LIMIT)
    assert until == ago(30) + timedelta(seconds=LIMIT)
    assert vehicle_state(online, until, LIMIT) == "online"
    assert vehicle_state(online, until + TICK, LIMIT) == "offline"

    no_gps = position(received=ago(600), seen=Seen(ago(10)))
    until = fresh_until(no_gps, "no_gps", LIMIT)
    assert until == ago(10) + timedelta(seconds=LIMIT)
    assert vehicle_state(no_gps, until, LIMIT) == "no_gps"
    assert vehicle_state(no_gps, until + TICK, LIMIT) == "offline"


def test_last_seen_is_the_newer_of_fix_and_heartbeat() -> None:
    assert last_seen(position(received=ago(30))) == ago(30)
    assert last_seen(position(received=ago(30), seen=Seen(ago(5)))) == ago(5)
    assert last_seen(position(received=ago(5), seen=Seen(ago(30)))) == ago(5)
    assert last_seen(heartbeats_only(ago(8))) == ago(8)


# -- views -----------------------------------------------------------------------------------


def test_operator_view_is_the_fleet_row() -> None:
    view = operator_view(position(received=NOW), "online")
    assert list(view) == FLEET_FIELDS
    assert view == {
        "device_id": 7,
        "name": "bus-7",
        "route": "5",
        "lat": 45.4651,
        "lon": 9.1909,
        "t": "2026-11-29T07:59:59Z",
        "speed": 6.4,
        "heading": 45.0,
        "accuracy": 7.5,
        "battery": 80.0,
        "charge": False,
        "received_at": "2026-11-29T08:00:00Z",
        "last_seen": "2026-11-29T08:00:00Z",
        "state": "online",
        **dict.fromkeys(FLEET_MODEL_FIELDS),
    }


def test_a_device_without_a_fix_has_the_same_fields_and_no_position() -> None:
    view = operator_view(heartbeats_only(ago(5)), "no_gps")
    assert list(view) == FLEET_FIELDS
    empty = ("lat", "lon", "t", "speed", "heading", "accuracy", "received_at")
    assert all(view[k] is None for k in empty)
    assert (view["battery"], view["charge"]) == (12.0, True)
    assert (view["last_seen"], view["state"]) == (iso(ago(5)), "no_gps")


def test_battery_comes_from_the_newer_of_fix_and_heartbeat() -> None:
    newer = operator_view(position(received=ago(60), seen=Seen(ago(5), 64.0, True)), "online")
    assert (newer["battery"], newer["charge"]) == (64.0, True)
    older = position(received=ago(5), seen=Seen(ago(60), battery=64.0, charge=True))
    assert operator_view(older, "online")["battery"] == 80.0
    # A heartbeat that says nothing of the battery leaves the fix's reading.
    silent = position(received=ago(60), seen=Seen(ago(5)))
    assert operator_view(silent, "online")["battery"] == 80.0


def test_operator_streams_show_the_fleet_row_plus_in_service() -> None:
    pos = position(in_service=False)
    streamed = stream_operator_view(pos, "out_of_service")
    assert list(streamed) == [*FLEET_FIELDS, "in_service"]
    assert streamed == {**operator_view(pos, "out_of_service"), "in_service": False}


def test_public_view_tells_riders_little() -> None:
    view = public_view(position(), "v0123456789abcdef", "online")
    assert list(view) == PUBLIC_FIELDS
    assert view["route_id"] == view["route"]
    assert (view["id"], view["label"], view["route"], view["t"]) == (
        "v0123456789abcdef",
        "bus-7",
        "5",
        "2026-11-29T07:59:59Z",
    )
    # Reachable without GPS is offline to riders: its position is not current.
    assert public_view(position(), "v1", "no_gps")["state"] == "offline"
    assert public_view(position(), "v1", "offline")["state"] == "offline"


def test_iso_writes_utc_with_z() -> None:
    rome = datetime(2026, 11, 29, 9, 0, 0, 500000, tzinfo=timezone(timedelta(hours=1)))
    assert iso(rome) == "2026-11-29T08:00:00.500000Z"
    assert iso(NOW) == "2026-11-29T08:00:00Z"


# -- distances -------------------------------------------------------------------------------


def test_distance_matches_published_great_circle_examples() -> None:
    # Rosetta Code, "Haversine formula": Nashville International Airport (BNA,
    # 36.12, -86.67) to Los Angeles International Airport (LAX, 33.94, -118.40)
    # is 2887.2599506071106 km on a sphere of radius 6372.8 km.
    bna_lax = distance_m(36.12, -86.67, 33.94, -118.40)
    assert bna_lax / EARTH_RADIUS_M * 6372.8 == pytest.approx(2887.2599506071106, abs=1e-6)
    # Ed Williams's Aviation Formulary: LAX (33°57'N 118°24'W) to JFK
    # (40°38'N 73°47'W) is 0.623585 radians, about 2144 nautical miles.
    lax_jfk = distance_m(33 + 57 / 60, -(118 + 24 / 60), 40 + 38 / 60, -(73 + 47 / 60))
    assert lax_jfk / EARTH_RADIUS_M == pytest.approx(0.623585, abs=1e-6)
    assert round(math.degrees(lax_jfk / EARTH_RADIUS_M) * 60) == 2144


def test_distance_is_symmetric_and_zero_at_a_point() -> None:
    assert distance_m(45.0, 9.0, 45.0, 9.0) == 0.0
    assert distance_m(45.0, 9.0, 46.0, 10.0) == distance_m(46.0, 10.0, 45.0, 9.0)
    # A thousandth of a degree of latitude is about 111 m anywhere.
    assert distance_m(45.0, 9.0, 45.001, 9.0) == pytest.approx(111.19, abs=0.01)
    # Antipodes: half the circumference, without a math domain error.
    assert distance_m(0.0, 0.0, 0.0, 180.0) == pytest.approx(math.pi * EARTH_RADIUS_M)


def test_a_standing_bus_keeps_the_course_it_drove_for_a_minute_only() -> None:
    def at(s: float, speed: float | None, heading: float | None = 90.0) -> FixIn:
        return FixIn(NOW + timedelta(seconds=s), 45.0, 9.0, speed=speed, heading=heading)

    east = course_after(None, at(0, 8.0))
    assert east == Course(90.0, NOW)
    # Stopped at a light: the GPS heading (here 270) is noise below 2 m/s.
    assert course_after(east, at(30, 0.4, 270.0)) == east
    assert course_after(east, at(COURSE_KEPT.total_seconds(), 0.0)) == east
    assert course_after(east, at(COURSE_KEPT.total_seconds() + 0.001, 0.0)) is None
    # Moving again: its own heading; no speed or no heading says nothing of the way.
    assert course_after(east, at(40, 2.0, 180.0)) == Course(180.0, NOW + timedelta(seconds=40))
    assert course_after(None, at(40, None)) is None
    assert course_after(None, at(40, 9.0, None)) is None
    # A fix older than the course (a backfill) does not carry it back in time.
    assert course_after(east, at(-5, 0.0)) is None
