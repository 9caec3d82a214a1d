"""Trip statistics (``server/trips.py``) on tracks whose answers are known by construction.

Tracks are laid along a meridian, where a degree of latitude is
``EARTH_RADIUS_M * pi / 180`` metres on our sphere, so every distance is known
without running the code under test.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from server.model import FixIn
from server.trips import trip_stats
from server.vehicle import EARTH_RADIUS_M
from tests.server.running import RunningServer

M_PER_DEG = EARTH_RADIUS_M * math.pi / 180
T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def fix(s: float, north_m: float, speed: float | None = None) -> FixIn:
    return FixIn(t=T0 + timedelta(seconds=s), lat=45.0 + north_m / M_PER_DEG, lon=9.0, speed=speed)


def drive(start_s: float, start_m: float, seconds: int, ms: float) -> list[FixIn]:
    """One fix a second at ``ms`` metres a second, after the fix at ``start_s``."""
    return [fix(start_s + i, start_m + ms * i) for i in range(1, seconds + 1)]


def test_a_drive_a_stop_and_a_drive_add_up() -> None:
    # 60 s at 10 m/s, 45 s standing at a stop, 30 s at 8 m/s.
    track = [fix(0, 0), *drive(0, 0, 60, 10.0)]
    track += [fix(60 + i, 600) for i in range(1, 46)]
    track += drive(105, 600, 30, 8.0)
    stats = trip_stats(track)
    assert stats.distance_m == pytest.approx(600 + 240, abs=0.01)
    assert stats.moving_s == 90 and stats.stopped_s == 45 and stats.gap_s == 0
    assert stats.max_speed_ms == pytest.approx(10.0, abs=1e-6)  # no reported speeds: segments'
    assert [(s.start, s.duration_s) for s in stats.stops] == [(T0 + timedelta(seconds=60), 45)]
    assert stats.as_json()["avg_moving_speed_ms"] == pytest.approx(840 / 90, abs=0.01)


def test_a_pause_shorter_than_a_stop_is_stopped_time_but_no_stop() -> None:
    track = [fix(0, 0), *drive(0, 0, 20, 5.0)]
    track += [fix(20 + i, 100) for i in range(1, 11)]  # a 10 s pause at a light
    track += drive(30, 100, 20, 5.0)
    stats = trip_stats(track)
    assert stats.stopped_s == 10 and stats.stops == []
    assert stats.distance_m == pytest.approx(200, abs=0.01)


def test_a_gap_in_coverage_and_a_jump_are_neither_moving_nor_counted() -> None:
    track = [fix(0, 0), *drive(0, 0, 10, 10.0)]
    # The unit was off for 10 minutes and came back 3 km further on: unknown road.
    track += [fix(610, 3100), *drive(610, 3100, 10, 10.0)]
    # A glitch: 5 km north in two seconds, and back the next second.
    track += [fix(622, 8200), fix(623, 3220)]
    stats = trip_stats(track)
    assert stats.gap_s == 600 + 2 + 1
    assert stats.moving_s == 20
    assert stats.distance_m == pytest.approx(100 + 100, abs=0.01)


def test_reported_speed_is_the_max_and_order_does_not_matter() -> None:
    track = [fix(0, 0, 9.5), fix(1, 10, 10.5), fix(2, 20, 9.0)]
    stats = trip_stats(list(reversed(track)))
    assert stats.max_speed_ms == 10.5
    assert stats.distance_m == pytest.approx(20, abs=0.01)


def test_no_fixes_and_one_fix() -> None:
    assert trip_stats([]).as_json()["from"] is None
    one = trip_stats([fix(0, 0)])
    assert (one.fixes, one.distance_m, one.moving_s, one.max_speed_ms) == (1, 0, 0, None)


def test_the_route_answers_the_stored_tracks_statistics(server: RunningServer) -> None:
    device, token = server.add_device("bus-3")
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    fixes = [
        {"t": (t0 + timedelta(seconds=i)).isoformat(), "lat": 45.0 + 10 * i / M_PER_DEG, "lon": 9.0}
        for i in range(61)
    ]
    r = httpx.post(
        f"{server.url}/v1/telemetry/location",
        json={"fixes": fixes},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200
    headers = server.operator("viewer")
    q = {"from": (t0 - timedelta(seconds=1)).isoformat()}
    body = httpx.get(f"{server.url}/v1/devices/{device.id}/trips", params=q, headers=headers).json()
    assert body["name"] == "bus-3" and body["fixes"] == 61
    assert body["distance_m"] == pytest.approx(600, abs=0.5)
    assert body["moving_s"] == 60 and body["stops"] == []
    bad = httpx.get(
        f"{server.url}/v1/devices/{device.id}/trips", params={"from": "soon"}, headers=headers
    )
    assert bad.status_code == 422 and bad.json()["error"].startswith("from:")
    missing = httpx.get(f"{server.url}/v1/devices/999999/trips", headers=headers)
    assert missing.status_code == 404
