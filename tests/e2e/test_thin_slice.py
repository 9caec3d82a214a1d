"""The whole data path with real processes: NMEA file → agent → HTTP → server → fleet/live."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pynmea2

from tests.e2e.procs import clean_env, cli, device_add, live, login, process, wait_for, wait_http
from tests.services import free_port


def _last_rmc_time(nmea: Path) -> datetime:
    last = None
    for line in nmea.read_text().splitlines():
        msg = pynmea2.parse(line)
        if msg.sentence_type == "RMC" and msg.status == "A":
            last = datetime.combine(msg.datestamp, msg.timestamp).replace(tzinfo=UTC)
    assert last is not None
    return last


def test_replayed_route_reaches_fleet_live(tmp_path: Path) -> None:
    env = clean_env(BUSTRACKER_DATA_DIR=str(tmp_path / "data"))
    bus = device_add("bus-42", env)
    cli(
        "server",
        "user",
        "add",
        "ops",
        "--role",
        "viewer",
        "--password-stdin",
        env=env,
        stdin="a long password\n",
    )
    nmea = tmp_path / "route.nmea"
    start = (datetime.now(UTC) - timedelta(minutes=10)).replace(microsecond=0)
    cli(
        "agent",
        "simulate",
        "--seed",
        "3",
        "--duration",
        "300",
        "--out",
        str(nmea),
        "--start",
        start.isoformat(),
        env=env,
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[server]\nurl = "{base}"\ntoken = "{bus["token"]}"\n\n'
        f'[gps]\nsource = "replay"\npath = "{nmea}"\nspeed = 0\n\n'
        f'[buffer]\npath = "{tmp_path / "buffer.sqlite3"}"\n'
    )
    server_cmd = [sys.executable, "-m", "server", "serve", "--port", str(port)]
    agent_cmd = [sys.executable, "-m", "agent", "run", "--config", str(config)]
    with (
        process(server_cmd, env, tmp_path, tmp_path / "server.log"),
        process(agent_cmd, env, tmp_path, tmp_path / "agent.log"),
    ):
        wait_http(f"{base}/health")
        headers = login(base, "ops", "a long password")
        newest = _last_rmc_time(nmea)

        def bus_at_end_of_route() -> bool:
            vehicles = live(base, headers)
            return bool(vehicles) and vehicles[0]["t"] == newest.isoformat().replace("+00:00", "Z")

        wait_for(bus_at_end_of_route, 60, "the bus's newest fix in /v1/fleet/live")
        (vehicle,) = live(base, headers)
        assert vehicle["name"] == "bus-42"
        assert vehicle["device_id"] == bus["id"]
        assert vehicle["state"] == "online"
        # Near the simulator's default centre (Milan), not at 0,0.
        assert abs(vehicle["lat"] - 45.46) < 0.2 and abs(vehicle["lon"] - 9.19) < 0.2
