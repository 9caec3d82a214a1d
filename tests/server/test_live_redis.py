"""The live bus between server processes through a real Redis.

Two ``python -m server serve`` processes share one PostGIS database and one
Redis, as two replicas behind nginx would: a fix posted to one reaches the
WebSocket subscribers of the other.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from server.auth import hash_device_token, hash_password, new_device_token
from server.model import Device
from server.settings import RateLimit
from server.store import open_store
from tests.server.live_client import fix, has_vehicle, live_ws, post_fixes, vehicles_of
from tests.server.running import RunningServer, run_async
from tests.services import free_port

SECRET = "live-redis-test-secret-" + "y" * 32
REPO = Path(__file__).resolve().parents[2]


class ServerProcess:
    """``python -m server serve``; started at once, :meth:`wait_ready` before use."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="bustracker-live-", suffix=".log")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server", "serve", "--port", str(self.port)],
            env=env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server did not start:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def replicas(
    postgis_url: str, redis_url: str, tmp_path: Path
) -> Iterator[Callable[..., list[ServerProcess]]]:
    started: list[ServerProcess] = []

    def start(count: int = 2, **extra_env: str) -> list[ServerProcess]:
        env = {
            **os.environ,
            "DATABASE_URL": postgis_url,
            "REDIS_URL": redis_url,
            "JWT_SECRET": SECRET,
            "BUSTRACKER_DATA_DIR": str(tmp_path),
            "LOG_LEVEL": "warning",
            "RATE_LIMIT_TELEMETRY": "1000",
            **extra_env,
        }
        run_async(lambda: _migrate(postgis_url, tmp_path))
        batch = [ServerProcess(env) for _ in range(count)]
        started.extend(batch)
        for server in batch:
            server.wait_ready()
        return batch

    yield start
    for server in started:
        server.stop()


OPERATORS = {"admin": "op-admin", "operator": "op-operator"}
PASSWORD = "correct horse battery"


async def _migrate(url: str, data_dir: Path) -> None:
    store = open_store(url, data_dir)
    await store.migrate()
    await store.open()
    try:
        for role, name in OPERATORS.items():
            if await store.user_by_name(name) is None:
                await store.add_user(name, hash_password(PASSWORD), role)  # type: ignore[arg-type]
    finally:
        await store.close()


def _device(url: str, data_dir: Path, name: str, route: str | None = None) -> tuple[int, str]:
    token = new_device_token()

    async def add() -> Device:
        store = open_store(url, data_dir)
        await store.open()
        try:
            return await store.add_device(name, hash_device_token(token), route)
        finally:
            await store.close()

    return run_async(add).id, token


def _token(server: ServerProcess, role: str = "admin") -> str:
    """A real sign-in on ``server``: access tokens name a stored sign-in (D55)."""
    r = httpx.post(
        f"{server.url}/v1/auth/login", json={"username": OPERATORS[role], "password": PASSWORD}
    )
    r.raise_for_status()
    token: str = r.json()["access_token"]
    return token


def test_a_fix_posted_to_one_process_reaches_subscribers_of_the_other(
    replicas: Callable[..., list[ServerProcess]], postgis_url: str, tmp_path: Path
) -> None:
    a, b = replicas(2)
    bus_id, token = _device(postgis_url, tmp_path, "bus-1", route="5")
    with (
        live_ws(b.url, token=_token(b)) as ops_b,
        live_ws(b.url, "/ws/public", routes="5") as public_b,
        live_ws(a.url, token=_token(a)) as ops_a,
    ):
        assert ops_b.snapshot()["vehicles"] == []
        public_b.snapshot()
        ops_a.snapshot()
        post_fixes(a.url, token, fix(45.0, 9.0, age_s=5, speed=4.0))
        ops_b.wait_for(has_vehicle("device_id", bus_id, lat=45.0, speed=4.0))
        ops_a.wait_for(has_vehicle("device_id", bus_id, lat=45.0))
        frame = public_b.wait_for(lambda f: f["type"] == "update")
        [v] = frame["vehicles"]
        assert (v["label"], v["lat"]) == ("bus-1", 45.0)

        # The other way round, and an operator change made on A reaches B's riders.
        post_fixes(b.url, token, fix(45.1, 9.1, age_s=1))
        ops_a.wait_for(has_vehicle("device_id", bus_id, lat=45.1))
        r = httpx.patch(
            f"{a.url}/v1/devices/{bus_id}",
            json={"in_service": False},
            headers={"Authorization": f"Bearer {_token(a, 'operator')}"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["live"] is True
        public_b.wait_for(lambda f: f["type"] == "update" and f["removed"] == [v["id"]])
        ops_b.wait_for(lambda f: f.get("state") == "out_of_service")

    # A role changed through A closes the operator's stream on B at once (D55).
    admin_a = {"Authorization": f"Bearer {_token(a)}"}
    with live_ws(b.url, token=_token(b, "operator")) as ops:
        ops.snapshot()
        users = httpx.get(f"{a.url}/v1/users", headers=admin_a).json()["users"]
        op_id = next(u["id"] for u in users if u["username"] == OPERATORS["operator"])
        r = httpx.patch(f"{a.url}/v1/users/{op_id}", json={"role": "viewer"}, headers=admin_a)
        assert r.status_code == 200, r.text
        with pytest.raises(ConnectionClosed) as closed:
            ops.wait_for(lambda f: False)
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4401, "role is now viewer")

    # Both processes' public ids agree: the key behind them is kept in the shared database.
    with live_ws(a.url, token=_token(a)) as ops:
        assert vehicles_of(ops.snapshot())[bus_id]["in_service"] is False


def test_each_process_announces_offline_once_to_its_own_clients(
    replicas: Callable[..., list[ServerProcess]], postgis_url: str, tmp_path: Path
) -> None:
    a, b = replicas(2, OFFLINE_AFTER="1s")
    bus_id, token = _device(postgis_url, tmp_path, "bus-1")
    with live_ws(b.url, token=_token(b), heartbeat=1) as ws:
        ws.snapshot()
        post_fixes(a.url, token, fix(45.0, 9.0))
        ws.wait_for(has_vehicle("device_id", bus_id, lat=45.0))
        ws.wait_for(lambda f: f["type"] == "state" and f["state"] == "offline")
        # Two heartbeats later, still exactly one offline announcement.
        for _ in range(2):
            ws.wait_for(lambda f: f["type"] == "heartbeat")
        offline = [f for f in ws.seen if f["type"] == "state" and f["state"] == "offline"]
        assert len(offline) == 1


class _Redis:
    """A private redis-server this test may stop and start again on the same port."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server not installed (Debian package redis-server)")
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tempfile.mkdtemp(prefix="bustracker-live-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                *(self.binary, "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", self.dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@pytest.mark.redis
def test_live_bus_survives_a_redis_restart(server_factory: Callable[..., RunningServer]) -> None:
    redis = _Redis()
    redis.start()
    try:
        server = server_factory(redis_url=redis.url, rate_limit_telemetry=RateLimit(1000, 60))
        bus, token = server.add_device("bus-1")
        with live_ws(server.url, token=server.operator()["Authorization"][7:]) as ws:
            ws.snapshot()
            post_fixes(server.url, token, fix(45.0, 9.0, age_s=30))
            ws.wait_for(has_vehicle("device_id", bus.id, lat=45.0))

            redis.stop()
            # Ingest does not depend on the live bus: the fix is stored and answered.
            post_fixes(server.url, token, fix(45.1, 9.1, age_s=20))
            redis.start()
            # Once the subscription is back, the hub reloads what it missed.
            ws.wait_for(has_vehicle("device_id", bus.id, lat=45.1), timeout=30)
            post_fixes(server.url, token, fix(45.2, 9.2, age_s=10))
            ws.wait_for(has_vehicle("device_id", bus.id, lat=45.2), timeout=30)
    finally:
        redis.stop()
        shutil.rmtree(redis.dir, ignore_errors=True)


@pytest.mark.redis
def test_server_starts_while_redis_is_down_and_joins_when_it_returns(
    server_factory: Callable[..., RunningServer],
) -> None:
    redis = _Redis()  # not started yet: nothing listens on its port
    try:
        server = server_factory(redis_url=redis.url, rate_limit_telemetry=RateLimit(1000, 60))
        bus, token = server.add_device("bus-1")
        health = httpx.get(f"{server.url}/health")
        assert health.status_code == 503 and health.json()["redis"] == "unavailable"
        with live_ws(server.url, token=server.operator()["Authorization"][7:]) as ws:
            ws.snapshot()
            # Without Redis this process still stores fixes and serves its own screens.
            post_fixes(server.url, token, fix(45.0, 9.0, age_s=30))
            ws.wait_for(has_vehicle("device_id", bus.id, lat=45.0))
            redis.start()
            post_fixes(server.url, token, fix(45.1, 9.1, age_s=20))
            ws.wait_for(has_vehicle("device_id", bus.id, lat=45.1), timeout=30)
        deadline = time.monotonic() + 30
        while httpx.get(f"{server.url}/health").status_code != 200:
            assert time.monotonic() < deadline, "health never recovered with Redis back"
            time.sleep(0.5)
    finally:
        redis.stop()
        shutil.rmtree(redis.dir, ignore_errors=True)


def test_a_phones_battery_and_sos_reach_operators_of_the_other_process(
    replicas: Callable[..., list[ServerProcess]], postgis_url: str, tmp_path: Path
) -> None:
    a, b = replicas(2)
    phone_id, token = _device(postgis_url, tmp_path, "phone-1", route="5")
    with live_ws(b.url, token=_token(b), routes="9") as ops_b:
        ops_b.snapshot()
        t = int(time.time()) - 5
        report = {"id": token, "timestamp": t, "lat": 45.0, "lon": 9.0, "batt": 42}
        assert httpx.post(f"{a.url}/", data=report).json()["accepted"] == 1
        r = httpx.post(f"{a.url}/", data={**report, "timestamp": t + 1, "alarm": "sos"})
        assert r.json()["alarm"] == {"kind": "sos", "duplicate": False}, r.text
        frame = ops_b.wait_for(lambda f: f["type"] == "event")
        assert (frame["event"]["device_id"], frame["event"]["kind"]) == (phone_id, "sos")
    with live_ws(b.url, token=_token(b)) as ops:
        assert vehicles_of(ops.snapshot())[phone_id]["battery"] == 42.0
