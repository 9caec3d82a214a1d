"""/osmand over real HTTP: what Traccar Client and other OsmAnd senders actually send."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from server.model import FixIn
from server.settings import RateLimit
from tests.server.running import RunningServer
from tests.server.stored import count_fixes

KNOT = 1852 / 3600


def traccar_client_url(base: str, token: str, t: int, **overrides: str) -> str:
    """The URL Traccar Client for Android builds (ProtocolFormatter.formatRequest).

    It appends these parameters in this order to the configured server URL, with
    Kotlin's Double.toString() values, speed in knots, and POSTs it with an
    empty body.
    """
    params = {
        "id": token,
        "timestamp": str(t),
        "lat": "45.4651234",
        "lon": "9.1909876",
        "speed": "19.438440000000002",  # 10 m/s * 1.943844
        "bearing": "45.5",
        "altitude": "120.30000305175781",
        "accuracy": "0.0",
        "batt": "85.0",
        **overrides,
    }
    return f"{base}/osmand?{urlencode(params)}"


def track(server: RunningServer, device_id: int) -> list[FixIn]:
    end = datetime.now(UTC) + timedelta(minutes=10)
    return server._with_store(lambda s: s.track(device_id, end - timedelta(days=30), end))


def test_the_exact_request_traccar_client_sends(any_server: RunningServer) -> None:
    device, token = any_server.add_device("phone-bus")
    t = int(time.time()) - 30
    r = httpx.post(traccar_client_url(any_server.url, token, t))
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 1 and r.json()["rejected"] == []
    # Phones are budgeted per fix (RATE_LIMIT_OSMAND), not like a v1 agent's requests.
    assert r.headers["RateLimit-Policy"] == "1800;w=60"
    assert r.json()["limits"]["fixes_per_minute"] == 1800
    (fix,) = track(any_server, device.id)
    assert fix.t == datetime.fromtimestamp(t, UTC)
    assert (fix.lat, fix.lon) == (45.4651234, 9.1909876)
    # Knots arrive, m/s are stored (Traccar Client's 1.943844 is itself rounded).
    assert fix.speed == pytest.approx(10.0, abs=1e-4)
    assert fix.heading == 45.5
    assert fix.alt == pytest.approx(120.3)
    # What a phone adds: accuracy (metres), battery (percent); no charge given.
    assert (fix.accuracy, fix.battery, fix.charge) == (0.0, 85.0, None)
    # The phone becomes a live vehicle like any bus unit.
    live = any_server._with_store(lambda s: s.live_positions())
    assert [p.device_id for p in live] == [device.id]
    # Traccar Client resends until it sees a 200: the retry is a duplicate, not a new fix.
    again = httpx.post(traccar_client_url(any_server.url, token, t))
    assert again.status_code == 200 and again.json()["duplicates"] == 1
    assert len(track(any_server, device.id)) == 1


def test_osmand_get_with_other_time_and_position_forms(server: RunningServer) -> None:
    device, token = server.add_device("bus-1")
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    variants = [
        {"timestamp": str(int(base.timestamp() * 1000)), "lat": "45.1", "lon": "9.1"},
        {
            "timestamp": (base + timedelta(seconds=1)).isoformat().replace("+00:00", "Z"),
            "location": "45.2,9.2",
            "hdop": "0.9",
        },
        # "yyyy-MM-dd HH:mm:ss" (the '+' of a query string is a space): read as UTC.
        {"timestamp": (base + timedelta(seconds=2)).strftime("%Y-%m-%d %H:%M:%S")},
    ]
    variants[2].update({"lat": "45.3", "lon": "9.3", "heading": "90"})
    for params in variants:
        r = httpx.get(f"{server.url}/osmand", params={"id": token, **params})
        assert r.status_code == 200, r.text
        assert r.json()["accepted"] == 1, r.text
    fixes = track(server, device.id)
    assert [f.t for f in fixes] == [base + timedelta(seconds=i) for i in range(3)]
    assert [f.lat for f in fixes] == [45.1, 45.2, 45.3]
    assert fixes[1].hdop == 0.9 and fixes[2].heading == 90.0


def test_form_body_and_missing_timestamp(server: RunningServer) -> None:
    device, token = server.add_device("bus-1")
    before = datetime.now(UTC)
    r = httpx.post(
        f"{server.url}/osmand",
        content=urlencode({"id": token, "lat": "45.5", "lon": "9.5", "speed": "0.0"}),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    (fix,) = track(server, device.id)
    # No timestamp: dated on arrival, as Traccar does.
    assert before - timedelta(seconds=1) <= fix.t <= datetime.now(UTC)
    assert fix.speed == 0.0


def traccar9_body(token: str, stamp: str, **coords: Any) -> dict[str, Any]:
    """Traccar Client 9's JSON (its background-geolocation SDK's location record)."""
    return {
        "location": {
            "timestamp": stamp,
            "coords": {
                "latitude": 37.4219983,
                "longitude": -122.084,
                "accuracy": 5,
                "speed": 0,
                "heading": -1,
                "altitude": 5,
                **coords,
            },
            "is_moving": False,
            "odometer": 0,
            "event": "motionchange",
            "battery": {"level": 1, "is_charging": False},
            "activity": {"type": "still"},
            "extras": {},
        },
        "device_id": token,
    }


def test_traccar_client_9_json(any_server: RunningServer) -> None:
    device, token = any_server.add_device("phone-bus")
    stamp = (datetime.now(UTC) - timedelta(seconds=20)).isoformat(timespec="milliseconds")
    stamp = stamp.replace("+00:00", "Z")
    r = httpx.post(
        f"{any_server.url}/osmand",
        content=json.dumps(traccar9_body(token, stamp, speed=8.5)),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    (fix,) = track(any_server, device.id)
    assert fix.t == datetime.fromisoformat(stamp)
    assert (fix.lat, fix.lon, fix.alt) == (37.4219983, -122.084, 5.0)
    assert fix.speed == 8.5  # m/s in the JSON variant, no knots
    assert fix.heading is None  # -1 means unknown


def test_json_batch_of_locations(server: RunningServer) -> None:
    device, token = server.add_device("phone-bus")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    locations = [
        traccar9_body(token, (start + timedelta(seconds=i)).isoformat(), latitude=45 + i / 1000)[
            "location"
        ]
        for i in range(5)
    ]
    locations[2]["coords"]["latitude"] = 123.0
    r = httpx.post(f"{server.url}/osmand", json={"device_id": token, "location": locations})
    body = r.json()
    assert r.status_code == 200
    assert body["accepted"] == 4
    assert body["rejected"] == [{"index": 2, "reason": "lat: 123.0 outside -90..90"}]
    assert len(track(server, device.id)) == 4


def test_id_is_the_token_not_the_name(server: RunningServer) -> None:
    device, token = server.add_device("bus-17")
    t = int(time.time()) - 30
    cases = {
        "bus-17": "unknown or revoked device token",  # knowing the name is not enough
        "bt_forged": "unknown or revoked device token",
        "": "missing device token: put it in the 'id' parameter",
    }
    for ident, reason in cases.items():
        r = httpx.post(traccar_client_url(server.url, ident, t))
        assert r.status_code == 401, ident
        assert r.json() == {"error": reason}
    r = httpx.post(f"{server.url}/osmand?lat=45&lon=9")
    assert r.status_code == 401
    server._with_store(lambda s: s.revoke_device(device.id))
    assert httpx.post(traccar_client_url(server.url, token, t)).status_code == 401
    assert server._with_store(count_fixes) == 0


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"lat": "91.0"}, "lat: 91.0 outside -90..90"),
        ({"lat": "abc"}, "lat: not a number: 'abc'"),
        ({"lon": "NaN"}, "lon: must be a finite number"),
        ({"lat": "0.0", "lon": "0.0"}, "lat/lon: 0,0 is a receiver's no-fix placeholder"),
        ({"valid": "false"}, "valid: the sender marked this fix as not valid"),
        ({"timestamp": "yesterday"}, "timestamp: not epoch seconds, milliseconds or ISO 8601"),
        ({"speed": "400"}, "speed: 205.7"),  # 400 knots is no bus
    ],
)
def test_a_bad_fix_is_answered_200_with_the_reason_and_not_stored(
    server: RunningServer, overrides: dict[str, str], reason: str
) -> None:
    # A 4xx would make Traccar Client resend this fix every 30 s forever,
    # blocking every fix queued behind it.
    _, token = server.add_device("bus-1")
    r = httpx.post(traccar_client_url(server.url, token, int(time.time()) - 30, **overrides))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 0
    assert body["rejected"][0]["reason"].startswith(reason)
    assert server._with_store(count_fixes) == 0


def test_future_fix_is_refused(server: RunningServer) -> None:
    _, token = server.add_device("bus-1")
    r = httpx.post(traccar_client_url(server.url, token, int(time.time()) + 3600))
    assert r.status_code == 200
    assert "in the future" in r.json()["rejected"][0]["reason"]


def test_unreadable_requests_are_4xx_json(server: RunningServer) -> None:
    _, token = server.add_device("bus-1")
    r = httpx.post(
        f"{server.url}/osmand",
        content=b'{"device_id": ',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 422 and r.json()["error"].startswith("body is not JSON")
    r = httpx.post(f"{server.url}/osmand", json={"device_id": token})
    assert r.status_code == 422 and "location" in r.json()["error"]
    r = httpx.post(
        f"{server.url}/osmand",
        content=b"\xff\xfe" * 10,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 422
    r = httpx.post(f"{server.url}/osmand", content=b"x" * (2 * 1024 * 1024))
    assert r.status_code == 413 and "error" in r.json()


def test_phones_are_budgeted_per_fix_and_v1_agents_per_request(
    server_factory: Callable[..., RunningServer],
) -> None:
    server = server_factory(rate_limit_osmand=RateLimit(20, 60))
    _, token = server.add_device("bus-1")
    t = int(time.time()) - 100
    # A phone back from a dead zone sends its queue one fix per request, back to back.
    for i in range(20):
        r = httpx.post(traccar_client_url(server.url, token, t + i))
        assert r.status_code == 200, (i, r.text)
    r = httpx.post(traccar_client_url(server.url, token, t + 20))
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) >= 1
    assert r.json()["error"] == "rate limit exceeded"
    assert r.json()["limits"]["fixes_per_minute"] == 20
    # A JSON list of locations costs one unit per fix: 5 do not fit in an empty budget.
    # The v1 budget of the same device is its own, still 10 requests a minute.
    for i in range(10):
        fix = {"t": t + 50 + i, "lat": 45.0, "lon": 9.0}
        r = httpx.post(
            f"{server.url}/v1/telemetry/location",
            json={"fixes": [fix]},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 200, r.text
        assert r.headers["RateLimit-Limit"] == "10"
    r = httpx.post(
        f"{server.url}/v1/telemetry/location",
        json={"fixes": [{"t": t + 99, "lat": 45.0, "lon": 9.0}]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 429
    assert server._with_store(count_fixes) == 30


def test_a_json_batch_costs_one_unit_per_fix(
    server_factory: Callable[..., RunningServer],
) -> None:
    server = server_factory(rate_limit_osmand=RateLimit(6, 60))
    _, token = server.add_device("phone-bus")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)

    def batch(first: int, n: int) -> dict[str, Any]:
        stamps = [(start + timedelta(seconds=first + i)).isoformat() for i in range(n)]
        return {
            "device_id": token,
            "location": [traccar9_body(token, s)["location"] for s in stamps],
        }

    assert httpx.post(f"{server.url}/osmand", json=batch(0, 4)).json()["accepted"] == 4
    r = httpx.post(f"{server.url}/osmand", json=batch(4, 3))  # 4 + 3 > 6
    assert r.status_code == 429
    assert httpx.post(f"{server.url}/osmand", json=batch(4, 2)).json()["accepted"] == 2
