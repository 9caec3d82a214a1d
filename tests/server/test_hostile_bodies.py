"""Hostile bodies, frames and parameters get a 4xx with a reason, never a 500 (issue 14).

Each body below raised an unhandled error once: Python's 4,300-digit limit on
reading integers, and recursion limits of both JSON parsers.
"""

from __future__ import annotations

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from server.live.ws import MAX_MESSAGE_BYTES
from tests.server.live_client import live_ws
from tests.server.running import RunningServer

DIGITS = "1" * 5000
JSON = {"Content-Type": "application/json"}


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_hostile_bodies_get_a_4xx_with_a_reason(any_server: RunningServer) -> None:
    device, token = any_server.add_device("bus-1")
    admin = any_server.operator("admin")
    device_auth = {"Authorization": f"Bearer {token}"}
    coords = '{"latitude": 45.1, "longitude": 9.2}'
    stamp = '{"location": {"timestamp": ' + DIGITS + ', "coords": ' + coords + "}}"
    latitude = '{"device_id": "x", "location": {"coords": {"latitude": ' + DIGITS + "}}}"
    cases = [
        # OsmAnd JSON, before authentication: the number is read before the token is looked up.
        ("POST", "/osmand", {}, stamp),
        ("POST", "/", {}, latitude),
        ("POST", "/osmand", {}, '{"location": ' + _nested(100_000) + "}"),
        ("POST", "/v1/telemetry/location", device_auth, _nested(100_000)),
        ("POST", "/v1/telemetry/location", device_auth, '{"fixes": [{"t": ' + DIGITS + "}]}"),
        ("PATCH", f"/v1/devices/{device.id}", admin, '{"route": ' + _nested(2000) + "}"),
        ("POST", "/v1/users", admin, '{"username": ' + _nested(2000) + "}"),
        ("POST", "/v1/auth/login", {}, '{"username": ' + _nested(2000) + "}"),
    ]  # fmt: skip
    for method, path, headers, body in cases:
        r = httpx.request(
            method, f"{any_server.url}{path}", content=body, headers={**JSON, **headers}
        )
        assert 400 <= r.status_code < 500, (path, body[:60], r.status_code, r.text)
        assert r.json()["error"], (path, r.text)


def test_hostile_websocket_frames(server: RunningServer) -> None:
    with live_ws(server.url, "/ws/public") as ws:
        ws.snapshot()
        ws.conn.send("[" * 8000)
        frame = ws.wait_for(lambda f: f["type"] == "error")
        assert frame["error"] in ("message is nested too deeply", "message is not JSON")
        ws.send({"type": "subscribe", "bbox": [int(DIGITS[:30]), 1, 2, 3]})
        assert ws.wait_for(lambda f: f["type"] in ("error", "snapshot"))
        ws.send({"type": "ping"})
        assert ws.wait_for(lambda f: f["type"] == "heartbeat")
    # Past the 16 kB rule the frame is refused before it is read in full.
    with live_ws(server.url, "/ws/public") as ws, pytest.raises(ConnectionClosed) as closed:
        ws.snapshot()
        ws.conn.send("x" * (MAX_MESSAGE_BYTES + 1))
        ws.wait_for(lambda f: False)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
