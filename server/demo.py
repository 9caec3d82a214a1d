"""``bustracker demo``: the whole system on one machine, on the embedded defaults.

The server runs in this process; each simulated bus is a real
``bustracker-agent`` process replaying NMEA that the agent's own simulator
generates, so the demo exercises the same code a bus unit runs. The server
never imports the agent: they meet over HTTP, as in the field.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from server.auth import hash_device_token, hash_password, new_device_token
from server.settings import Settings
from server.store import open_store

if TYPE_CHECKING:
    import uvicorn

DEMO_USER = "demo"
ROUTES = ("1", "2", "5", "14", "90")
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass(frozen=True)
class Bus:
    name: str
    token: str
    route: str


class DemoError(Exception):
    pass


def _agent_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "agent", *args]


async def _prepare(settings: Settings, buses: int) -> tuple[str, list[Bus]]:
    store = open_store(settings.store.database_url, settings.store.data_dir)
    await store.open()
    try:
        password = secrets.token_urlsafe(9)
        await store.add_user(DEMO_USER, hash_password(password), "admin")
        fleet = []
        for i in range(1, buses + 1):
            token = new_device_token()
            route = ROUTES[(i - 1) % len(ROUTES)]
            await store.add_device(f"bus-{i:02d}", hash_device_token(token), route)
            fleet.append(Bus(f"bus-{i:02d}", token, route))
        return password, fleet
    finally:
        await store.close()


def _agent_config(workdir: Path, bus: Bus, url: str, seed: int) -> Path:
    nmea = workdir / f"{bus.name}.nmea"
    start = datetime.now(UTC).replace(microsecond=0).isoformat()
    subprocess.run(
        _agent_cmd(
            "simulate",
            "--seed",
            str(seed),
            "--duration",
            "3600",
            "--out",
            str(nmea),
            "--start",
            start,
        ),
        check=True,
    )
    config = workdir / f"{bus.name}.toml"
    config.write_text(
        f'[server]\nurl = "{url}"\ntoken = "{bus.token}"\n\n'
        f'[gps]\nsource = "replay"\npath = "{nmea}"\nspeed = 1.0\nloop = true\n\n'
        f'[buffer]\npath = "{workdir / (bus.name + ".sqlite3")}"\n\n'
        # The default status file sits beside the buffer: give each bus its own.
        f'[status]\npath = "{workdir / (bus.name + ".status.json")}"\n'
    )
    return config


async def _serve(
    settings: Settings, host: str, port: int, workdir: Path, fleet: list[Bus], password: str
) -> None:
    import uvicorn

    from server.app import create_app
    from server.logs import configure_logging
    from server.serving import uvicorn_options

    # Quiet, so the sign-in and URLs stay in view; what does get logged goes
    # through the same redaction as the server's.
    configure_logging(settings.http.log_format, "warning")
    options = {**uvicorn_options(settings), "log_level": "warning"}
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host=host, port=port, **options))
    # uvicorn stops gracefully on SIGINT/SIGTERM and then raises the signal again
    # against the handler it found. Python's default for SIGTERM ends the process
    # on the spot, before the agents below are stopped: they would keep running,
    # orphaned. Our handler makes that second delivery a plain stop request.
    previous = {sig: signal.signal(sig, _stop_handler(server)) for sig in _STOP_SIGNALS}
    try:
        await _serve_with_agents(server, host, port, workdir, fleet, password)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop_handler(server: uvicorn.Server) -> Callable[[int, FrameType | None], None]:
    def stop(signum: int, frame: FrameType | None) -> None:
        server.should_exit = True

    return stop


async def _serve_with_agents(
    server: uvicorn.Server, host: str, port: int, workdir: Path, fleet: list[Bus], password: str
) -> None:
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()
            raise DemoError(f"the server could not start on {host}:{port}")
        await asyncio.sleep(0.05)
    url = f"http://{host}:{port}"
    agents: list[subprocess.Popen[bytes]] = []
    try:
        for seed, bus in enumerate(fleet, start=1):
            config = await asyncio.to_thread(_agent_config, workdir, bus, url, seed)
            agents.append(subprocess.Popen(_agent_cmd("run", "--config", str(config))))
        print(
            f"\nbustracker demo: {len(fleet)} buses reporting to {url}\n"
            f"  console:   {url}/console/   (the map, the fleet, replays)\n"
            f"  sign in:   {DEMO_USER} / {password}\n"
            f"  wallboard: {url}/monitor/   (same sign-in)\n"
            f"  riders:    {url}/\n"
            f"  the API:   TOKEN=$(curl -s -X POST {url}/v1/auth/login -H 'Content-Type: "
            f'application/json\' -d \'{{"username":"{DEMO_USER}","password":"{password}"}}\''
            " | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')\n"
            f'             curl -s -H "Authorization: Bearer $TOKEN" {url}/v1/fleet/live\n'
            f"  live feed: curl -N {url}/v1/live/public/stream\n"
            f"             (or a WebSocket: ws://{host}:{port}/ws/public)\n"
            "  Ctrl-C stops everything.\n",
            flush=True,
        )
        await serving
    finally:
        for proc in agents:
            proc.terminate()
        for proc in agents:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def run_demo(settings: Settings, *, buses: int, host: str, port: int) -> int:
    if importlib.util.find_spec("agent") is None or importlib.util.find_spec("pynmea2") is None:
        raise DemoError("the demo runs the bus agent too: pip install 'bustracker[agent,server]'")
    if not 1 <= buses <= 200:
        raise DemoError("--buses: between 1 and 200")
    # Absolute: the agent reads paths in its config relative to the config file.
    workdir = (settings.store.data_dir / "demo").resolve()
    # A fresh fleet every run: the demo prints new tokens and a new password.
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    # Always the embedded store: the demo must not touch a production database.
    # Its sign-ins need not outlive it, so the per-process JWT secret is fine.
    settings = settings.with_values(data_dir=workdir, database_url=None, jwt_secret_configured=True)
    password, fleet = asyncio.run(_prepare(settings, buses))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(settings, host, port, workdir, fleet, password))
    return 0
