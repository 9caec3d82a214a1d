"""/ws and /ws/public against a real server on loopback, with a real WebSocket client."""

from __future__ import annotations

import base64
import os
import re
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from server.auth import Principal, TokenIssuer
from server.settings import RateLimit
from tests.server.live_client import (
    PUBLIC_VEHICLE_KEYS,
    access_token,
    fix,
    has_vehicle,
    iso,
    live_ws,
    post_fixes,
    vehicles_of,
)
from tests.server.running import RunningServer

Factory = Callable[..., RunningServer]
MANY = RateLimit(100_000, 60)


def test_snapshot_on_connect_then_update_for_a_newer_fix_only(server: RunningServer) -> None:
    bus, token = server.add_device("bus-1", route="5")
    marker, marker_token = server.add_device("marker")
    post_fixes(server.url, token, fix(45.47, 9.20, age_s=10, speed=7.5, heading=90.0))
    with live_ws(server.url, token=access_token(server)) as ws:
        snap = ws.snapshot()
        v = vehicles_of(snap)[bus.id]
        assert (v["name"], v["route"], v["lat"], v["lon"], v["speed"], v["heading"]) == (
            "bus-1",
            "5",
            45.47,
            9.20,
            7.5,
            90.0,
        )
        assert v["in_service"] is True
        assert v["state"] == "online"

        post_fixes(server.url, token, fix(45.48, 9.21, age_s=5))
        ws.wait_for(has_vehicle("device_id", bus.id, lat=45.48))

        # An older fix is stored but moves nothing: the next frame is the marker's.
        post_fixes(server.url, token, fix(45.10, 9.10, age_s=60))
        post_fixes(server.url, marker_token, fix(45.0, 9.0))
        frame = ws.wait_for(lambda f: f["type"] == "update")
        assert set(vehicles_of(frame)) == {marker.id}


def test_operator_token_in_header_or_query_and_refusals(server: RunningServer) -> None:
    token = access_token(server)
    with live_ws(server.url, headers={"Authorization": f"Bearer {token}"}) as ws:
        assert ws.snapshot()["vehicles"] == []
    with live_ws(server.url, token=token) as ws:
        assert ws.snapshot()["type"] == "snapshot"

    issuer = TokenIssuer(server.settings.auth.jwt_secret, 900, 3600)
    someone = Principal(1, "op-viewer", "viewer")
    refusals = {
        "missing access token": None,
        "token invalid": "not-a-jwt",
        "token expired": issuer.issue(someone, "access", now=time.time() - 3600),
        "expected an access token": issuer.issue(someone, "refresh"),
    }
    for reason, bad in refusals.items():
        # Accepted, then closed with 4401: a browser can read a close code, not a status.
        with live_ws(server.url, token=bad) as ws, pytest.raises(ConnectionClosed) as closed:
            ws.recv()
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4401, reason)


def test_the_stream_ends_when_the_access_token_expires(server_factory: Factory) -> None:
    server = server_factory(jwt_access_expiry_s=3)
    with live_ws(server.url, token=access_token(server)) as ws:
        ws.snapshot()
        with pytest.raises(ConnectionClosed) as closed:
            ws.wait_for(lambda f: False)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4401, "token expired")


def test_bad_filter_closes_with_4400(server: RunningServer) -> None:
    with (
        live_ws(server.url, "/ws/public", bbox="1,2,3") as ws,
        pytest.raises(ConnectionClosed) as c,
    ):
        ws.recv()
    assert c.value.rcvd is not None and c.value.rcvd.code == 4400
    assert "bbox" in c.value.rcvd.reason


def test_filter_by_route_and_bbox_changed_while_connected(server_factory: Factory) -> None:
    server = server_factory(rate_limit_telemetry=MANY)
    a, ta = server.add_device("a", route="5")
    b, tb = server.add_device("b", route="7")
    post_fixes(server.url, ta, fix(45.0, 9.0, age_s=30))
    post_fixes(server.url, tb, fix(46.0, 10.0, age_s=30))
    with live_ws(server.url, token=access_token(server), routes="5") as ws:
        assert set(vehicles_of(ws.snapshot())) == {a.id}
        post_fixes(server.url, tb, fix(46.0, 10.0, age_s=20))
        post_fixes(server.url, ta, fix(45.0, 9.0, age_s=20))
        # b's move is not for this client; a's is.
        assert set(vehicles_of(ws.wait_for(lambda f: f["type"] == "update"))) == {a.id}

        ws.send({"type": "subscribe", "bbox": [9.5, 45.5, 10.5, 46.5]})
        snap = ws.snapshot()
        assert snap["filter"] == {"bbox": [9.5, 45.5, 10.5, 46.5], "routes": None}
        assert set(vehicles_of(snap)) == {b.id}

        # a drives into the box and b out of it: one shows up, the other is removed.
        post_fixes(server.url, ta, fix(46.0, 10.0, age_s=10))
        ws.wait_for(has_vehicle("device_id", a.id, lat=46.0))
        post_fixes(server.url, tb, fix(45.0, 9.0, age_s=10))
        ws.wait_for(lambda f: f["type"] == "update" and b.id in f["removed"])

        ws.send({"type": "subscribe", "bbox": "nonsense"})
        error = ws.wait_for(lambda f: f["type"] == "error")
        assert "bbox" in error["error"]
        ws.send({"type": "subscribe"})  # no filter: everything
        assert set(vehicles_of(ws.snapshot())) == {a.id, b.id}


def test_public_stream_hides_ids_and_vehicles_out_of_service(server_factory: Factory) -> None:
    server = server_factory(rate_limit_telemetry=MANY)
    bus, token = server.add_device("bus-1", route="5")
    _, marker_token = server.add_device("marker")
    post_fixes(server.url, token, fix(45.47, 9.20, age_s=10, speed=3.0, heading=10.0))
    admin = server.operator("admin")
    with (
        live_ws(server.url, "/ws/public") as public,
        live_ws(server.url, token=access_token(server)) as ops,
    ):
        snap = public.snapshot()
        ops.snapshot()
        [v] = snap["vehicles"]
        assert set(v) == set(PUBLIC_VEHICLE_KEYS)
        assert (v["label"], v["route"], v["lat"], v["speed"]) == ("bus-1", "5", 45.47, 3.0)
        # An opaque id (an HMAC of the device id), not the device id in disguise.
        assert re.fullmatch(r"v[0-9a-f]{16}", v["id"]) and v["id"] != f"v{bus.id}"
        public_id = v["id"]

        r = httpx.patch(
            f"{server.url}/v1/devices/{bus.id}", json={"in_service": False}, headers=admin
        )
        assert r.status_code == 200, r.text
        assert r.json()["in_service"] is False
        public.wait_for(lambda f: f["type"] == "update" and public_id in f["removed"])
        ops.wait_for(lambda f: f.get("state") == "out_of_service" and f["device_id"] == bus.id)

        # While out of service its fixes reach operators but not riders.
        post_fixes(server.url, token, fix(45.5, 9.3, age_s=5))
        ops.wait_for(has_vehicle("device_id", bus.id, lat=45.5, in_service=False))
        post_fixes(server.url, marker_token, fix(45.0, 9.0))
        frame = public.wait_for(lambda f: f["type"] == "update")
        assert [v["label"] for v in frame["vehicles"]] == ["marker"]
        assert all("device_id" not in v for v in frame["vehicles"])

        r = httpx.patch(
            f"{server.url}/v1/devices/{bus.id}",
            json={"in_service": True, "route": "9"},
            headers=admin,
        )
        assert r.status_code == 200, r.text
        public.wait_for(has_vehicle("id", public_id, route="9", lat=45.5))
    with live_ws(server.url, "/ws/public") as public:
        assert {v["label"] for v in public.snapshot()["vehicles"]} == {"bus-1", "marker"}


def test_device_patch_needs_an_operator_and_a_valid_body(server: RunningServer) -> None:
    bus, _ = server.add_device("bus-1")
    url = f"{server.url}/v1/devices/{bus.id}"
    assert httpx.patch(url, json={"in_service": False}).status_code == 401
    viewer = server.operator("viewer")
    assert httpx.patch(url, json={"in_service": False}, headers=viewer).status_code == 403
    operator = server.operator("operator")
    for body in ({}, {"inService": False}, {"in_service": "no"}, {"route": ""}, [1]):
        r = httpx.patch(url, json=body, headers=operator)
        assert r.status_code == 422, body
        assert r.json()["error"]
    r = httpx.patch(f"{server.url}/v1/devices/999999", json={"route": "1"}, headers=operator)
    assert r.status_code == 404
    r = httpx.patch(url, json={"route": " 12 "}, headers=operator)
    assert r.status_code == 200
    assert r.json()["route"] == "12"


def test_offline_then_back_online_as_state_frames(server_factory: Factory) -> None:
    server = server_factory(offline_after_s=1, rate_limit_telemetry=MANY)
    bus, token = server.add_device("bus-1")
    with (
        live_ws(server.url, token=access_token(server)) as ops,
        live_ws(server.url, "/ws/public") as public,
    ):
        ops.snapshot()
        public.snapshot()
        # Posted only now: signing in (Argon2) may take longer than the 1 s threshold.
        post_fixes(server.url, token, fix(45.0, 9.0))
        ops.wait_for(has_vehicle("device_id", bus.id, state="online"))
        went = ops.wait_for(lambda f: f["type"] == "state")
        assert (went["device_id"], went["state"]) == (bus.id, "offline")
        assert public.wait_for(lambda f: f["type"] == "state")["state"] == "offline"
        r = httpx.get(f"{server.url}/v1/fleet/live", headers=server.operator("viewer"))
        assert r.json()["vehicles"][0]["state"] == "offline"

        post_fixes(server.url, token, fix(45.1, 9.1))
        back = ops.wait_for(lambda f: f["type"] == "state")
        assert (back["device_id"], back["state"]) == (bus.id, "online")
        assert public.wait_for(lambda f: f["type"] == "state")["state"] == "online"


def test_since_on_reconnect_sends_only_what_changed(
    server_factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server runs in this process: drop the look-back grace so "before" is clear-cut.
    monkeypatch.setattr("server.live.hub.SINCE_GRACE", timedelta(0))
    server = server_factory(rate_limit_telemetry=MANY)
    _, ta = server.add_device("a")
    b, tb = server.add_device("b")
    post_fixes(server.url, ta, fix(45.0, 9.0, age_s=5))
    post_fixes(server.url, tb, fix(45.1, 9.1, age_s=5))
    token = access_token(server)
    with live_ws(server.url, token=token) as ws:
        last_at = ws.snapshot()["at"]
    time.sleep(0.01)
    post_fixes(server.url, tb, fix(45.2, 9.2, age_s=1))
    with live_ws(server.url, token=token, since=last_at) as ws:
        snap = ws.snapshot()
        assert snap["since"] == last_at
        assert set(vehicles_of(snap)) == {b.id}
        assert vehicles_of(snap)[b.id]["lat"] == 45.2
    with live_ws(server.url, "/ws/public", since="nonsense") as ws, pytest.raises(ConnectionClosed):
        ws.recv()
    future = iso(datetime.now(UTC).replace(year=datetime.now(UTC).year + 1))
    with live_ws(server.url, token=token, since=future) as ws:
        assert ws.snapshot()["vehicles"] == []


def test_heartbeats_and_bad_messages(server: RunningServer) -> None:
    with live_ws(server.url, "/ws/public", heartbeat=1) as ws:
        ws.snapshot()
        beat = ws.wait_for(lambda f: f["type"] == "heartbeat")
        assert beat["at"].endswith("Z")
        ws.conn.send("{not json")
        assert ws.wait_for(lambda f: f["type"] == "error")["error"] == "message is not JSON"
        ws.send({"type": "dance"})
        assert "unknown message type" in ws.wait_for(lambda f: f["type"] == "error")["error"]
        ws.send({"type": "ping"})
        ws.wait_for(lambda f: f["type"] == "heartbeat")


def _stalled_client(url: str, path: str) -> socket.socket:
    """A WebSocket that completes the handshake and then never reads a byte."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def test_a_client_that_never_reads_does_not_slow_ingest_or_others(server_factory: Factory) -> None:
    server = server_factory(rate_limit_telemetry=MANY, rate_limit_api=MANY)
    # Long labels make each frame ~200 kB, so the stalled sockets' buffers (a few MB
    # on loopback) fill within seconds and the server really is blocked on them.
    buses = [server.add_device(f"bus-{i}-" + "x" * 32_000) for i in range(16)]
    stalled = [_stalled_client(server.url, "/ws/public") for _ in range(3)]
    ops = server.operator()
    try:
        with (
            live_ws(server.url, token=access_token(server)) as ws,
            httpx.Client(timeout=30) as http,
        ):
            ws.snapshot()
            round_ = after_stall = 0
            stats: dict[str, Any] = {}
            deadline = time.monotonic() + 60
            # Keep ingesting until all three are seen stuck, then some more.
            while after_stall < 3:
                assert time.monotonic() < deadline, stats
                if stats.get("clients_stalled", 0) == 3:
                    after_stall += 1
                for _, token in buses:
                    r = http.post(
                        f"{server.url}/v1/telemetry/location",
                        json={"fixes": [fix(45 + round_ / 1000, 9.0, age_s=300 - round_)]},
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    assert r.status_code == 200, r.text
                stats = http.get(f"{server.url}/v1/live/stats", headers=ops).json()
                round_ += 1
            assert stats["clients_stalled"] == 3
            assert stats["outbox_max"] <= len(buses)
            # The client that reads still gets every bus's newest position.
            last = 45 + (round_ - 1) / 1000
            newest: set[int] = set()
            while len(newest) < len(buses):
                frame = ws.wait_for(lambda f: f["type"] == "update")
                newest.update(k for k, v in vehicles_of(frame).items() if v["lat"] == last)
    finally:
        for sock in stalled:
            sock.close()


def test_streams_are_not_compressed(server: RunningServer) -> None:
    # The client offers permessage-deflate, as browsers do; the server declines it, since a
    # compressor per socket doubled each rider's memory for frames of a few hundred bytes.
    with live_ws(server.url, "/ws/public") as public:
        assert "permessage-deflate" in public.conn.request.headers["Sec-WebSocket-Extensions"]
        assert "Sec-WebSocket-Extensions" not in public.conn.response.headers
        assert public.snapshot()["type"] == "snapshot"
