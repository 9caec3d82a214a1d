"""Running the real ``bustracker`` and ``bustracker-agent`` commands as processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(extra)
    return env


def cli(*args: str, env: dict[str, str], stdin: str = "") -> str:
    r = subprocess.run(
        [sys.executable, "-m", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


@contextmanager
def process(
    args: list[str], env: dict[str, str], cwd: Path, log: Path
) -> Iterator[subprocess.Popen[str]]:
    with log.open("w") as out:
        proc = subprocess.Popen(
            args,
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def wait_http(url: str, timeout: float = 30) -> None:
    def up() -> bool:  # /health is not rate-limited, so poll it briskly
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, timeout, f"{url} to answer", interval=0.2)


def login(base: str, username: str, password: str) -> dict[str, str]:
    r = httpx.post(f"{base}/v1/auth/login", json={"username": username, "password": password})
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def live(base: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    r = httpx.get(f"{base}/v1/fleet/live", headers=headers, timeout=5)
    r.raise_for_status()
    vehicles: list[dict[str, Any]] = r.json()["vehicles"]
    return vehicles


def device_add(name: str, env: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(cli("server", "device", "add", name, "--json", env=env))
    return out
