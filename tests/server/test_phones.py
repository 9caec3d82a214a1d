"""Phones as bus units over real HTTP: reports at /, heartbeats, SOS, battery in the fleet view."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx

from server.model import FixIn
from tests.server.live_client import access_token, live_ws
from tests.server.running import RunningServer
from tests.server.stored import count_fixes
from tests.server.test_live_sse import sse

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def form(url: str, **params: Any) -> httpx.Response:
    """What Traccar Client 10 sends: a POST to the server URL with a form body."""
    return httpx.post(url, content=urlencode(params), headers=FORM)


def fleet(server: RunningServer) -> dict[int, dict[str, Any]]:
    r = httpx.get(f"{server.url}/v1/fleet/live", headers=server.operator("viewer"))
    assert r.status_code == 200, r.text
    return {v["device_id"]: v for v in r.json()["vehicles"]}


def test_reports_at_the_root_url_and_a_page_for_browsers(any_server: RunningServer) -> None:
    device, token = any_server.add_device("phone-1")
    t = int(time.time()) - 60
    # Traccar Client's default server URL is the host root.
    r = form(f"{any_server.url}/", id=token, timestamp=t, lat=45.1, lon=9.1, speed=0.0)
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    r = httpx.get(
        f"{any_server.url}/", params={"id": token, "timestamp": t + 1, "lat": 45.2, "lon": 9.2}
    )
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    r = httpx.post(f"{any_server.url}/?deviceid={token}&timestamp={t + 2}&location=45.3,9.3")
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    assert any_server._with_store(lambda s: count_fixes(s, device.id)) == 3
    # A browser at / gets a page, not a JSON error; a query without id is still a browser.
    for url in (f"{any_server.url}/", f"{any_server.url}/?utm_source=poster"):
        page = httpx.get(url)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert '<link rel="manifest" href="/manifest.webmanifest">' in page.text
    # A device that forgot its token is told so, at / as at /osmand.
    for path in ("/", "/osmand"):
        r = form(f"{any_server.url}{path}", lat=45.0, lon=9.0)
        assert r.status_code == 401
        assert r.json() == {"error": "missing device token: put it in the 'id' parameter"}
    r = form(f"{any_server.url}/", id="bt_forged", lat=45.0, lon=9.0)
    assert r.status_code == 401 and r.json() == {"error": "unknown or revoked device token"}


def test_a_heartbeat_shows_the_phone_reachable_without_gps(any_server: RunningServer) -> None:
    device, token = any_server.add_device("phone-1", route="5")
    never_fixed, token2 = any_server.add_device("phone-2")
    # phone-1 had a fix ten minutes ago: offline by now (OFFLINE_AFTER is 120 s).
    old = datetime.now(UTC) - timedelta(minutes=10)
    any_server._with_store(lambda s: s.insert_fixes(device.id, [FixIn(old, 45.1, 9.1)], old))
    assert fleet(any_server)[device.id]["state"] == "offline"
    # The Traccar SDK's heartbeat: id, timestamp, battery; no position.
    r = form(f"{any_server.url}/", id=token, timestamp=int(time.time()), batt=64.0, charge="true")
    assert r.status_code == 200, r.text
    assert (r.json()["accepted"], r.json()["rejected"], r.json()["seen"]) == (0, [], True)
    r = form(f"{any_server.url}/", id=token2, batt=12)
    assert r.status_code == 200, r.text
    assert any_server._with_store(count_fixes) == 1
    vehicles = fleet(any_server)
    phone = vehicles[device.id]
    assert phone["state"] == "no_gps"
    assert (phone["lat"], phone["lon"]) == (45.1, 9.1)  # still the last known position
    assert (phone["battery"], phone["charge"]) == (64.0, True)
    assert phone["last_seen"] > phone["received_at"]
    # A phone that never had a fix is listed too, reachable, with no position.
    other = vehicles[never_fixed.id]
    assert (other["state"], other["lat"], other["lon"], other["t"]) == ("no_gps", None, None, None)
    assert (other["name"], other["battery"]) == ("phone-2", 12.0)
    # The device list says when each was last heard from, too.
    r = httpx.get(f"{any_server.url}/v1/devices", headers=any_server.operator("viewer"))
    listed = {d["id"]: d["last_seen"] for d in r.json()["devices"]}
    assert listed == {device.id: phone["last_seen"], never_fixed.id: other["last_seen"]}


def test_a_fix_carries_accuracy_battery_and_charge_to_the_fleet_view(
    server: RunningServer,
) -> None:
    device, token = server.add_device("phone-1")
    t = int(time.time()) - 5
    params = dict(id=token, timestamp=t, lat=45.1, lon=9.1, accuracy=7.5, batt=55, charge="false")
    assert form(f"{server.url}/", **params).json()["accepted"] == 1
    v = fleet(server)[device.id]
    assert (v["state"], v["accuracy"], v["battery"], v["charge"]) == ("online", 7.5, 55.0, False)
    # A reading out of range refuses the fix with a reason, as any bad field does.
    r = form(f"{server.url}/", **{**params, "timestamp": t + 1, "batt": 150})
    assert r.status_code == 200
    assert r.json()["rejected"] == [{"index": 0, "reason": "batt: 150.0 outside 0..100"}]


def wait_event(ws: Any, kind: str = "sos") -> dict[str, Any]:
    frame = ws.wait_for(lambda f: f["type"] == "event" and f["event"]["kind"] == kind)
    event: dict[str, Any] = frame["event"]
    return event


def test_sos_reaches_operators_live_and_stays_in_the_history(
    server_factory: Callable[..., RunningServer],
) -> None:
    server = server_factory()
    device, token = server.add_device("phone-1", route="5")
    headers = server.operator("viewer")
    t = int(time.time()) - 2
    sos = dict(id=token, timestamp=t, lat=45.1, lon=9.1, alarm="sos", batt=40)
    # An operator watching only route 7 still gets the SOS of a bus on route 5.
    with live_ws(server.url, token=access_token(server), routes="7") as ws:
        ws.snapshot()
        r = form(f"{server.url}/", **sos)
        assert r.status_code == 200, r.text
        assert r.json()["accepted"] == 1
        assert r.json()["alarm"] == {"kind": "sos", "duplicate": False}
        event = wait_event(ws)
    assert (event["device_id"], event["name"], event["route"]) == (device.id, "phone-1", "5")
    assert (event["lat"], event["lon"]) == (45.1, 9.1)
    assert event["t"] == datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")
    # Traccar Client resends when it missed the answer: one event, not two.
    again = form(f"{server.url}/", **sos)
    assert again.json()["alarm"] == {"kind": "sos", "duplicate": True}
    # The SOS button works without a GPS fix too: an event without a position.
    r = form(f"{server.url}/", id=token, timestamp=t + 30, alarm="sos")
    assert r.status_code == 200 and r.json()["seen"] is True
    history = httpx.get(f"{server.url}/v1/devices/{device.id}/events", headers=headers)
    assert history.status_code == 200, history.text
    events = history.json()["events"]
    assert [(e["kind"], e["lat"]) for e in events] == [("sos", 45.1), ("sos", None)]
    assert events[0]["id"] == event["id"]


def test_the_events_route_refuses_what_it_cannot_answer(server: RunningServer) -> None:
    device, _ = server.add_device("phone-1")
    url = f"{server.url}/v1/devices/{device.id}/events"
    assert httpx.get(url).status_code == 401
    headers = server.operator("viewer")
    r = httpx.get(f"{server.url}/v1/devices/{device.id + 99}/events", headers=headers)
    assert r.status_code == 404 and "no device" in r.json()["error"]
    r = httpx.get(url, params={"from": "yesterday"}, headers=headers)
    assert r.status_code == 422 and r.json()["error"].startswith("from:")
    r = httpx.get(
        url, params={"from": "2026-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, headers=headers
    )
    assert r.status_code == 422 and "31 days" in r.json()["error"]
    assert httpx.get(url, headers=headers).json()["events"] == []


def test_heartbeats_turn_an_offline_bus_into_no_gps_on_the_live_stream(
    server_factory: Callable[..., RunningServer],
) -> None:
    server = server_factory(offline_after_s=3)
    device, token = server.add_device("phone-1")
    with live_ws(server.url, token=access_token(server)) as ws:
        ws.snapshot()
        assert form(f"{server.url}/", id=token, lat=45.1, lon=9.1).json()["accepted"] == 1
        ws.wait_for(lambda f: f["type"] == "state" and f["state"] == "offline")
        assert form(f"{server.url}/", id=token, batt=30).json()["seen"] is True
        frame = ws.wait_for(lambda f: f["type"] == "state" and f["device_id"] == device.id)
        assert frame["state"] == "no_gps"
        # Riders are not shown a position without a fix as current: offline to them.
        with live_ws(server.url, "/ws/public") as rider:
            [vehicle] = rider.snapshot()["vehicles"]
            assert (vehicle["label"], vehicle["state"]) == ("phone-1", "offline")


def test_sos_reaches_operators_on_server_sent_events_too(server: RunningServer) -> None:
    _, token = server.add_device("phone-1")
    with sse(server, "/v1/live/stream", token=access_token(server)) as stream:
        stream.wait_for(lambda f: f["type"] == "snapshot")
        r = form(f"{server.url}/", id=token, alarm="sos")
        assert r.json()["alarm"] == {"kind": "sos", "duplicate": False}, r.text
        frame = stream.wait_for(lambda f: f["type"] == "event")
        assert (frame["event"]["name"], frame["event"]["lat"]) == ("phone-1", None)


def test_heartbeats_in_json_and_with_unreadable_readings(server: RunningServer) -> None:
    device, token = server.add_device("phone-1")
    # Traccar Client 9's JSON without coords is a heartbeat too.
    body = {"device_id": token, "location": {"battery": {"level": 0.5, "is_charging": True}}}
    r = httpx.post(f"{server.url}/osmand", json=body)
    assert r.status_code == 200 and r.json()["seen"] is True, r.text
    assert (fleet(server)[device.id]["battery"], fleet(server)[device.id]["charge"]) == (50.0, True)
    # A heartbeat whose battery cannot be read still marks the phone seen (a 4xx would
    # make it resend forever); the answer says what was ignored.
    r = form(f"{server.url}/", id=token, batt="abc", alarm="not an alarm!")
    assert r.status_code == 200, r.text
    assert r.json()["seen"] is True
    assert r.json()["ignored"] == [
        "alarm: expected a name like 'sos', got 'not an alarm!'",
        "batt: not a number: 'abc'",
    ]
    assert "alarm" not in r.json()
    assert fleet(server)[device.id]["battery"] is None
    assert server._with_store(count_fixes) == 0
