"""One real ``bustracker serve`` under a lowered descriptor limit, attacked as issue 14 did.

Riders open more public streams than the caps allow, from one address and from
many (loopback has all of 127.0.0.0/8), and slow clients trickle headers;
throughout, an agent's POSTs, a phone's OsmAnd report, ``/health`` and an
operator's stream keep working. The same run signs in, refreshes, signs out
and reports with every kind of credential, and its log, every line JSON, must
hold none of them.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from server.auth import hash_device_token, hash_password, new_device_token
from server.store import open_store
from tests.server.live_client import LiveWS, fix, has_vehicle, live_ws
from tests.server.running import run_async
from tests.services import free_port

REPO = Path(__file__).resolve().parents[2]
NOFILE = 160
FD_RESERVE = 80
PER_ADDRESS = 5
PASSWORD = "s3cret-horse-battery"
SECRET = "hostile-load-secret-" + "z" * 32


def _limit_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict[str, Any]]:
    device_token = new_device_token()

    async def seed() -> int:
        store = open_store(None, tmp_path)
        await store.open()
        try:
            await store.add_user("root", hash_password(PASSWORD), "admin")
            return (await store.add_device("bus-1", hash_device_token(device_token))).id
        finally:
            await store.close()

    device_id = run_async(seed)
    port = free_port()
    log = tmp_path / "server.log"
    env = {
        **os.environ,
        "BUSTRACKER_DATA_DIR": str(tmp_path),
        "JWT_SECRET": SECRET,
        "LOG_LEVEL": "info",
        "LOG_FORMAT": "json",
        "RATE_LIMIT_TELEMETRY": "1000",
        "PUBLIC_STREAMS_PER_ADDRESS": str(PER_ADDRESS),
        "FD_RESERVE": str(FD_RESERVE),
        "HEADER_TIMEOUT": "1s",
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server", "serve", "--port", str(port)],
            env=env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_limit_descriptors,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    info = {"url": url, "port": port, "log": log, "device_id": device_id, "token": device_token}
    try:
        yield info
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _rider(stack: ExitStack, port: int, source: str) -> ClientConnection:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    uri = f"ws://127.0.0.1:{port}/ws/public"
    return stack.enter_context(connect(uri, sock=sock, open_timeout=10))


def _first(conn: ClientConnection) -> tuple[str, Any]:
    """("frame", type) for a stream that started, ("closed", (code, reason)) for a refusal."""
    try:
        return "frame", json.loads(conn.recv(timeout=10))["type"]
    except ConnectionClosed as exc:
        assert exc.rcvd is not None
        return "closed", (exc.rcvd.code, exc.rcvd.reason)


def _agents_and_operators_work(info: dict[str, Any], ops: LiveWS, lat: float) -> None:
    url = info["url"]
    assert httpx.get(f"{url}/health", timeout=10).status_code == 200
    r = httpx.post(
        f"{url}/v1/telemetry/location",
        json={"fixes": [fix(lat, 9.0)]},
        headers={"Authorization": f"Bearer {info['token']}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    ops.wait_for(has_vehicle("device_id", info["device_id"], lat=lat))
    report = {"id": info["token"], "lat": lat + 0.01, "lon": 9.0, "timestamp": int(time.time())}
    r = httpx.get(f"{url}/osmand", params=report, timeout=10)
    assert r.status_code == 200, r.text


def test_riders_cannot_starve_ingest_or_operators_and_no_secret_is_logged(
    served: dict[str, Any],
) -> None:
    url, port = served["url"], served["port"]
    tokens = httpx.post(
        f"{url}/v1/auth/login", json={"username": "root", "password": PASSWORD}
    ).json()
    riders: list[ClientConnection] = []
    slow: list[socket.socket] = []
    with ExitStack() as stack:
        ops = stack.enter_context(live_ws(url, token=tokens["access_token"]))
        ops.snapshot()
        # One address: PER_ADDRESS streams, then 1013 with the reason.
        for _ in range(PER_ADDRESS + 3):
            riders.append(_rider(stack, port, "127.0.0.1"))
        firsts = [_first(r) for r in riders]
        assert firsts[:PER_ADDRESS] == [("frame", "snapshot")] * PER_ADDRESS
        reason = f"too many public streams from your address (at most {PER_ADDRESS})"
        assert firsts[PER_ADDRESS:] == [("closed", (1013, reason))] * 3
        sse = httpx.get(f"{url}/v1/live/public/stream", timeout=10)
        assert sse.status_code == 503 and sse.headers["Retry-After"] == "30"
        _agents_and_operators_work(served, ops, 45.0)

        # Many addresses: the total stops at the descriptor limit minus the reserve.
        many = [
            _rider(stack, port, f"127.0.0.{n}") for n in range(2, 22) for _ in range(PER_ADDRESS)
        ]
        riders += many
        outcome = [_first(r) for r in many]
        opened = sum(1 for kind, _ in outcome if kind == "frame")
        full = ("closed", (1013, "too many public streams on this server; retry later"))
        assert opened + PER_ADDRESS == NOFILE - FD_RESERVE
        assert outcome.count(full) == len(many) - opened
        # Turned away from the stream, a rider still gets the public snapshot, cacheable.
        snap = httpx.get(f"{url}/v1/live/public", timeout=10)
        assert snap.status_code == 200 and "max-age" in snap.headers["cache-control"]
        assert [v["label"] for v in snap.json()["vehicles"]] == ["bus-1"]
        again = httpx.get(f"{url}/v1/live/public", headers={"If-None-Match": snap.headers["etag"]})
        assert again.status_code == 304
        # Slow headers are cut off; meanwhile everyone who matters still gets through.
        for _ in range(10):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            slow.append(s)
        _agents_and_operators_work(served, ops, 45.2)
        for s in slow:
            assert s.recv(100) == b"", "a connection sending half its headers is closed"
        for s in slow:
            s.close()

    # The rest of the run: every kind of credential, in every place a client puts one.
    r = httpx.post(f"{url}/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    fresh = r.json()
    httpx.get(f"{url}/v1/fleet/live", params={"access_token": fresh["access_token"]})
    stream = {"token": fresh["access_token"]}
    with httpx.stream("GET", f"{url}/v1/live/stream", params=stream, timeout=10) as r:
        assert r.status_code == 200
    httpx.post(f"{url}/v1/auth/login", json={"username": "root", "password": PASSWORD + "x"})
    echoed = httpx.get(f"{url}/health", headers={"X-Request-ID": "trace-42"})
    assert echoed.headers["X-Request-ID"] == "trace-42"
    odd = httpx.get(f"{url}/health", headers={"X-Request-ID": "no spaces {allowed}"})
    assert odd.headers["X-Request-ID"] != "no spaces {allowed}"
    assert (
        httpx.post(
            f"{url}/v1/auth/logout", json={"refresh_token": fresh["refresh_token"]}
        ).status_code
        == 204
    )

    log = served["log"].read_text()
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    access = [line for line in lines if line.get("logger") == "bustracker.access"]
    assert any(a["path"] == "/osmand" and "id=[redacted]" in a["query"] for a in access)
    assert any(a.get("request_id") == "trace-42" for a in access)
    secrets = {
        "device token": served["token"],
        "access token": tokens["access_token"],
        "refresh token": tokens["refresh_token"],
        "fresh access token": fresh["access_token"],
        "fresh refresh token": fresh["refresh_token"],
        "password": PASSWORD,
        "JWT secret": SECRET,
    }
    assert [name for name, value in secrets.items() if value in log] == []
