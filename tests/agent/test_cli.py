"""``bustracker-agent`` as a user runs it: real subprocesses, real files."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.cli import main
from agent.sources import ReplaySource
from tests.agent.fake_server import FakeServer

ROOT = Path(__file__).resolve().parents[2]
WAIT = 60.0


def agent(*args: str, timeout: float = WAIT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=timeout,
    )


def write_config(tmp_path: Path, url: str, extra: str = "") -> Path:
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f"""
[server]
url = "{url}"
token = "secret"

[gps]
source = "replay"
path = "route.nmea"
speed = 30

[buffer]
path = "state/buffer.sqlite"
synchronous = "normal"

[upload]
interval_s = 0.2
requests_per_minute = 600
{extra}
""")
    return cfg


def simulate_route(tmp_path: Path) -> Path:
    """Two minutes of route, written by ``bustracker-agent simulate`` as an installer would."""
    r = agent(
        "simulate",
        "--seed",
        "7",
        "--duration",
        "120",
        "--out",
        str(tmp_path / "route.nmea"),
        "--start",
        "2026-11-29T06:00:00Z",
    )
    assert r.returncode == 0, r.stderr
    return tmp_path / "route.nmea"


@pytest.fixture
def route(tmp_path: Path) -> Path:
    return simulate_route(tmp_path)


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer(limit=100, window_s=10.0) as s:
        yield s


def test_simulate_writes_a_replayable_route(route: Path) -> None:
    got = list(ReplaySource(route, speed=0).fixes(threading.Event()))
    fixes = [f for f in got if f is not None]
    assert len(fixes) >= 100
    assert fixes[0].t == datetime(2026, 11, 29, 6, 0, tzinfo=UTC)


def test_check_config_ok(tmp_path: Path, route: Path) -> None:
    r = agent("check-config", "--config", str(write_config(tmp_path, "http://127.0.0.1:9")))
    assert r.returncode == 0, r.stderr
    assert "[upload]" in r.stdout and '"***"' in r.stdout and "config OK" in r.stderr


def test_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "http://127.0.0.1:9", 'max_batch = "x"')
    for command in ("check-config", "run", "status"):
        r = agent(command, "--config", str(cfg))
        assert r.returncode == 2, (command, r.stderr)
        assert 'upload.max_batch: must be an integer >= 1, got "x"' in r.stderr


def test_env_override_is_checked_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, "http://127.0.0.1:9")
    monkeypatch.setenv("BUSTRACKER_AGENT__BUFFER__MAX_MB", "lots")
    with pytest.raises(SystemExit) as info:
        main(["check-config", "--config", str(cfg)])
    assert info.value.code == 2
    assert "BUSTRACKER_AGENT__BUFFER__MAX_MB: buffer.max_mb" in capsys.readouterr().err


def test_check_config_flags_a_missing_token(tmp_path: Path) -> None:
    cfg = tmp_path / "agent.toml"
    cfg.write_text('[server]\nurl = "http://127.0.0.1:9"\ntoken_file = "nope"\n')
    r = agent("check-config", "--config", str(cfg))
    assert r.returncode == 2 and "server.token_file: can't read" in r.stderr


def test_status_before_first_run(tmp_path: Path) -> None:
    r = agent("status", "--config", str(write_config(tmp_path, "http://127.0.0.1:9")), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {
        "state": "stopped",
        "backlog": 0,
        "last_fix": None,
        "last_upload": None,
        "last_error": None,
    }


def test_run_status_and_clean_stop(tmp_path: Path, route: Path, server: FakeServer) -> None:
    cfg = write_config(tmp_path, server.url)
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "run", "--config", str(cfg)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.wait_for(lambda: len(server.fixes) > 20, WAIT)
        # The status file is rewritten about once a second: the uploads it reports
        # may be a moment behind what the server already holds.
        end = time.monotonic() + WAIT
        while True:
            doc = json.loads(agent("status", "--config", str(cfg), "--json").stdout)
            if doc["last_fix"] is not None or time.monotonic() > end:
                break
            time.sleep(0.2)
        assert list(doc) == ["state", "backlog", "last_fix", "last_upload", "last_error"]
        assert doc["state"] in ("ok", "draining", "starting")
        assert doc["last_fix"]["t"].startswith("2026-11-29T06:0")
        human = agent("status", "--config", str(cfg))
        assert human.returncode == 0 and "state:" in human.stdout and "backlog:" in human.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 0, err
    doc = json.loads(agent("status", "--config", str(cfg), "--json").stdout)
    assert doc["state"] == "stopped" and doc["last_upload"] is not None


def test_killed_agent_shows_stopped(tmp_path: Path, route: Path, server: FakeServer) -> None:
    cfg = write_config(tmp_path, server.url)
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "run", "--config", str(cfg)],
        cwd=ROOT,
        stderr=subprocess.DEVNULL,
    )
    status = tmp_path / "state" / "status.json"
    end = time.monotonic() + WAIT
    while not status.exists() and time.monotonic() < end:
        time.sleep(0.05)
    proc.kill()
    proc.wait(WAIT)
    doc = json.loads(agent("status", "--config", str(cfg), "--json").stdout)
    assert doc["state"] == "stopped"


def test_version() -> None:
    r = agent("--version")
    assert r.returncode == 0 and "bustracker-agent" in r.stdout
