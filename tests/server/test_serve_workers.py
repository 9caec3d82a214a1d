"""`bustracker serve --workers N`: several processes on one box, sharing what must be shared."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from tests.services import free_port


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(BUSTRACKER_DATA_DIR=str(tmp_path / "data"), **extra)
    return env


def test_several_workers_need_postgis_redis_and_a_jwt_secret(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "server", "serve", "--workers", "2", "--port", str(free_port())],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    for name in ("DATABASE_URL", "REDIS_URL", "JWT_SECRET"):
        assert name in r.stderr


def test_two_workers_serve_and_share_the_device_rate_limit(
    tmp_path: Path, postgis_url: str, redis_url: str
) -> None:
    env = _env(
        tmp_path,
        DATABASE_URL=postgis_url,
        REDIS_URL=redis_url,
        JWT_SECRET="workers-test-" + "x" * 40,
    )
    subprocess.run([sys.executable, "-m", "server", "migrate"], env=env, check=True, timeout=60)
    added = subprocess.run(
        [sys.executable, "-m", "server", "device", "add", "bus-1", "--json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    token = json.loads(added.stdout)["token"]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--workers", "2", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True)
        assert len(workers.stdout.split()) >= 2
        t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
        codes = []
        for i in range(11):
            t = (t0 + timedelta(seconds=i)).isoformat().replace("+00:00", "Z")
            # A new connection each time, so the workers share the requests between them.
            r = httpx.post(
                f"{base}/v1/telemetry/location",
                json={"fixes": [{"t": t, "lat": 45.46, "lon": 9.19}]},
                headers={"Authorization": f"Bearer {token}", "Connection": "close"},
            )
            codes.append(r.status_code)
        assert codes == [200] * 10 + [429]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
