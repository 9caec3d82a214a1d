"""Enrollment end to end: ``bustracker device code`` on the server host, then
``bustracker-agent enroll`` on the bus against a running ``bustracker serve`` process,
then the agent (a process too) ships with the token it got.

Every refused code (wrong, expired, used) exits non-zero naming the reason and
writes nothing; the accepted one writes the token file (0600) and the config.
The one-shot commands run in this process (``main(argv)``, as their entry
points do): starting an interpreter for each would cost seconds apiece.
"""

from __future__ import annotations

import asyncio
import io
import json
import stat
import sys
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main as agent_main
from server import enrollment
from server.cli import main as server_main
from server.store import open_store
from tests.e2e.procs import clean_env, live, login, process, wait_for, wait_http
from tests.services import free_port

AGENT_CONFIG = """# a bus unit's config, as the installer left it before enrolling
[gps]
source = "replay"  # the test's recorded route
path = "{nmea}"
speed = 0

[buffer]
path = "{buffer}"
"""


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def run(main: Callable[[list[str]], int], capsys: pytest.CaptureFixture[str], *argv: str) -> Ran:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return Ran(code, out, err)


def enroll(capsys: pytest.CaptureFixture[str], base: str, code: str, config: Path) -> Ran:
    argv = ("enroll", "--server", base, "--code", code, "--config", str(config))
    return run(agent_main, capsys, *argv)


def bustracker(capsys: pytest.CaptureFixture[str], *argv: str) -> Ran:
    ran = run(server_main, capsys, *argv)
    assert ran.returncode == 0, ran.stderr
    return ran


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str], Path]]:
    tmp = tmp_path_factory.mktemp("enroll")
    env = clean_env(BUSTRACKER_DATA_DIR=str(tmp / "data"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "server", "serve", "--port", str(port)]
    with process(cmd, env, tmp, tmp / "server.log"):
        wait_http(f"{base}/health")
        yield base, env, tmp


@pytest.fixture
def data_dir(
    served: tuple[str, dict[str, str], Path], monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The commands run here use the server's data directory."""
    _, env, _ = served
    monkeypatch.setenv("BUSTRACKER_DATA_DIR", env["BUSTRACKER_DATA_DIR"])
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return env


def device_add(capsys: pytest.CaptureFixture[str], name: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(bustracker(capsys, "device", "add", name, "--json").stdout)
    return out


def code_for(capsys: pytest.CaptureFixture[str], device_id: int) -> dict[str, Any]:
    ran = bustracker(capsys, "device", "code", str(device_id), "--json")
    out: dict[str, Any] = json.loads(ran.stdout)
    return out


def test_the_cli_prints_a_typeable_code_that_expires_in_a_day(
    data_dir: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    bus = device_add(capsys, "bus-cli")
    answer = code_for(capsys, bus["id"])
    assert set(answer) == {"device_id", "code", "expires_at"}
    assert enrollment.normalize(answer["code"]) is not None
    assert len(answer["code"]) == 9 and answer["code"][4] == "-"
    expires = datetime.fromisoformat(answer["expires_at"])
    assert timedelta(hours=23, minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=24)
    text = bustracker(capsys, "device", "code", str(bus["id"])).stdout
    assert "bustracker-agent enroll --server URL --code " in text
    missing = run(server_main, capsys, "device", "code", "99999")
    assert missing.returncode == 2 and "no device with id 99999" in missing.stderr


def _expired_code(data_dir: str, device_id: int) -> str:
    """A code that expired a minute ago, stored as the server would have issued it."""
    code = enrollment.new_code()
    canonical = enrollment.normalize(code)
    assert canonical is not None

    async def issue() -> None:
        store = open_store(None, Path(data_dir))
        await store.open()
        try:
            then = datetime.now(UTC) - timedelta(days=1)
            expired = datetime.now(UTC) - timedelta(minutes=1)
            await store.issue_enrollment_code(
                device_id, enrollment.code_hash(canonical), then, expired
            )
        finally:
            await store.close()

    asyncio.run(issue())
    return code


def test_refused_codes_write_nothing_and_the_accepted_one_lets_the_agent_ship(
    served: tuple[str, dict[str, str], Path],
    data_dir: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base, env, tmp = served
    bus = device_add(capsys, "bus-7")
    monkeypatch.setattr("sys.stdin", io.StringIO("a long password\n"))
    bustracker(capsys, "user", "add", "ops", "--role", "viewer", "--password-stdin")
    nmea = tmp / "route.nmea"
    start = (datetime.now(UTC) - timedelta(minutes=5)).replace(microsecond=0)
    simulate = ("simulate", "--seed", "3", "--duration", "60", "--out", str(nmea))
    assert run(agent_main, capsys, *simulate, "--start", start.isoformat()).returncode == 0
    unit = tmp / "unit"
    unit.mkdir()
    config = unit / "agent.toml"
    before = AGENT_CONFIG.format(nmea=nmea, buffer=unit / "buffer.sqlite3")
    config.write_text(before)

    refusals = [
        ("WXYA-3467", "unknown_code"),  # well formed, never issued
        ("hello", "unknown_code"),  # not even a code
        (_expired_code(env["BUSTRACKER_DATA_DIR"], bus["id"]), "expired_code"),
    ]
    for code, reason in refusals:
        r = enroll(capsys, base, code, config)
        assert r.returncode == 1, (code, r.stdout, r.stderr)
        assert reason in r.stderr and "nothing was written" in r.stderr
        assert config.read_text() == before
        assert sorted(p.name for p in unit.iterdir()) == ["agent.toml"]

    code = code_for(capsys, bus["id"])["code"]
    r = enroll(capsys, base, code.lower().replace("-", " "), config)  # as an installer may type it
    assert r.returncode == 0, r.stderr
    token_file = unit / "device-token"
    assert f"enrolled as device {bus['id']} (bus-7)" in r.stdout
    assert str(token_file) in r.stdout and "updated" in r.stdout
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    doc = tomllib.loads(config.read_text())
    assert doc["server"] == {"url": base, "token_file": str(token_file)}
    assert doc["gps"]["source"] == "replay"
    assert "# the test's recorded route" in config.read_text()  # the installer's comments stay

    # The code is spent, and the token it gave is a new one.
    again = unit / "again.toml"
    r = enroll(capsys, base, code, again)
    assert r.returncode == 1 and "used_code" in r.stderr and not again.exists()
    assert token_file.read_text().strip() != bus["token"]

    agent_cmd = [sys.executable, "-m", "agent", "run", "--config", str(config)]
    with process(agent_cmd, env, unit, tmp / "agent.log"):
        headers = login(base, "ops", "a long password")

        def shipped() -> dict[str, Any] | None:
            mine = [v for v in live(base, headers) if v["device_id"] == bus["id"]]
            return mine[0] if mine and mine[0]["agent_version"] else None

        vehicle = wait_for(shipped, 60, "the enrolled bus in /v1/fleet/live", interval=0.3)
    assert vehicle["state"] == "online" and vehicle["backlog"] is not None
    assert vehicle["agent_version"]  # the v1 body's agent object is kept and shown
