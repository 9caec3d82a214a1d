"""GET /v1/fleet/live: what an operator sees after buses report."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx

from tests.server.running import RunningServer


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def test_live_shows_newest_fix_of_each_bus(any_server: RunningServer) -> None:
    bus1, token1 = any_server.add_device("bus-1", route="5")
    any_server.add_device("bus-2")
    now = datetime.now(UTC).replace(microsecond=0)
    newest = {
        "t": _iso(now - timedelta(seconds=5)),
        "lat": 45.47,
        "lon": 9.20,
        "speed": 7.5,
        "heading": 180.0,
    }
    older = {"t": _iso(now - timedelta(seconds=60)), "lat": 45.40, "lon": 9.10}
    for body in ({"fixes": [newest]}, {"fixes": [older]}):
        r = httpx.post(
            f"{any_server.url}/v1/telemetry/location",
            json=body,
            headers={"Authorization": f"Bearer {token1}"},
        )
        assert r.status_code == 200
    r = httpx.get(f"{any_server.url}/v1/fleet/live", headers=any_server.operator("viewer"))
    assert r.status_code == 200
    vehicles = {v["device_id"]: v for v in r.json()["vehicles"]}
    # bus-2 never reported: it has no position to show yet.
    assert set(vehicles) == {bus1.id}
    v = vehicles[bus1.id]
    assert (v["name"], v["lat"], v["lon"], v["speed"], v["heading"]) == (
        "bus-1",
        45.47,
        9.20,
        7.5,
        180.0,
    )
    assert v["t"] == newest["t"]
    assert v["route"] == "5"
    assert v["state"] == "online"


def test_live_marks_silent_bus_offline(server_factory: object) -> None:
    server = server_factory(offline_after_s=1)  # type: ignore[operator]
    _, token = server.add_device("bus-1")
    t = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    httpx.post(
        f"{server.url}/v1/telemetry/location",
        json={"fixes": [{"t": _iso(t), "lat": 45.47, "lon": 9.2}]},
        headers={"Authorization": f"Bearer {token}"},
    ).raise_for_status()
    headers = server.operator("viewer")
    deadline = datetime.now(UTC) + timedelta(seconds=20)
    state = "online"
    while state == "online" and datetime.now(UTC) < deadline:
        time.sleep(0.25)
        state = httpx.get(f"{server.url}/v1/fleet/live", headers=headers).json()["vehicles"][0][
            "state"
        ]
    assert state == "offline"
