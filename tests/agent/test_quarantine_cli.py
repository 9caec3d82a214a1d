"""``bustracker-agent quarantine list|requeue`` as an installer runs them, agent running or not."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.buffer import Buffer
from agent.cli import main
from agent.fix import Fix
from agent.pipeline import Context, Pipeline
from agent.protocol import format_time
from agent.settings import load_settings
from agent.sources import ReplaySource
from tests.agent.fake_server import FakeServer
from tests.agent.test_cli import ROOT, WAIT, agent, simulate_route, write_config

T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
REASON = "HTTP 422: body unreadable"
FAST_RETRY = "backoff_base_s = 0.05\nbackoff_max_s = 0.2\n"


def _fixes(n: int) -> list[Fix]:
    return [
        Fix(T0 + timedelta(seconds=i), 45.4651 + i * 1e-5, 9.1909, speed=5.0, mode=3)
        for i in range(n)
    ]


def _buffer_path(cfg: Path) -> Path:
    return load_settings(cfg, env={}).buffer.path


def _status_file(cfg: Path) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads(load_settings(cfg, env={}).status_path.read_text())
    except (OSError, ValueError):
        return {}
    return doc


def _wait(predicate: Any, what: str) -> None:
    end = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    return write_config(tmp_path, "http://127.0.0.1:9")


def test_list_shows_time_position_and_reason(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    b = Buffer(_buffer_path(cfg))
    fs = _fixes(5)
    b.add_many(fs)
    b.quarantine([fs[3], fs[1]], REASON)
    b.close()
    assert main(["quarantine", "list", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "time" in lines[0] and "lat" in lines[0] and "reason" in lines[0]
    assert lines[1].split()[:3] == ["2026-11-29T08:00:01Z", "45.4651100", "9.1909000"]
    assert lines[1].endswith(REASON) and lines[2].startswith("2026-11-29T08:00:03Z")
    assert "2 fixes quarantined" in out and "quarantine requeue --config" in out

    assert main(["quarantine", "list", "--config", str(cfg), "--json"]) == 0
    docs = json.loads(capsys.readouterr().out)
    assert [d["t"] for d in docs] == ["2026-11-29T08:00:01Z", "2026-11-29T08:00:03Z"]
    assert docs[0] == {
        "t": "2026-11-29T08:00:01Z",
        "lat": 45.46511,
        "lon": 9.1909,
        "alt": None,
        "speed": 5.0,
        "heading": None,
        "hdop": None,
        "sats": None,
        "mode": 3,
        "reason": REASON,
    }


def test_requeue_moves_them_back_and_says_how_many(cfg: Path) -> None:
    b = Buffer(_buffer_path(cfg))
    fs = _fixes(5)
    b.add_many(fs)
    b.quarantine(fs[:3], REASON)
    b.close()
    r = agent("quarantine", "requeue", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert "requeued 3 fixes" in r.stdout
    b = Buffer(_buffer_path(cfg), read_only=True)
    assert b.quarantined() == 0 and b.count() == 5
    r = agent("quarantine", "requeue", "--config", str(cfg))
    assert r.returncode == 0 and "nothing to requeue" in r.stdout
    r = agent("quarantine", "list", "--config", str(cfg), "--json")
    assert r.returncode == 0 and json.loads(r.stdout) == []


@pytest.mark.parametrize("action", ["list", "requeue"])
def test_missing_buffer_file_is_an_error_naming_it(cfg: Path, action: str) -> None:
    path = _buffer_path(cfg)
    r = agent("quarantine", action, "--config", str(cfg))
    assert r.returncode == 1
    assert f"no buffer file {path} (buffer.path in {cfg})" in r.stderr
    assert not path.exists()  # looking must not create an empty buffer


@pytest.mark.parametrize("action", ["list", "requeue"])
def test_unreadable_buffer_file_is_an_error_naming_it(cfg: Path, action: str) -> None:
    path = _buffer_path(cfg)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not a database, it is a text file that got here somehow\n" * 64)
    r = agent("quarantine", action, "--config", str(cfg))
    assert r.returncode == 1
    assert f"{path}: file is not a database" in r.stderr and "Traceback" not in r.stderr


def test_a_buffer_from_a_newer_agent_is_left_alone(cfg: Path) -> None:
    b = Buffer(_buffer_path(cfg))
    b.db.execute("PRAGMA user_version = 99")
    b.close()
    for action in ("list", "requeue"):
        r = agent("quarantine", action, "--config", str(cfg))
        assert r.returncode == 1 and "schema version 99 is newer" in r.stderr


def test_bad_config_exits_2(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "http://127.0.0.1:9", 'max_batch = "x"')
    r = agent("quarantine", "list", "--config", str(cfg))
    assert r.returncode == 2 and "upload.max_batch" in r.stderr


@pytest.fixture
def route(tmp_path: Path) -> Path:
    return simulate_route(tmp_path)


def _kept(route: Path, cfg: Path) -> list[Fix]:
    """The fixes the agent's own pipeline keeps from the route."""
    pipeline = Pipeline(load_settings(cfg, env={}).filter)
    ctx = Context(now=datetime.now(UTC), clock_synced=False)
    got = ReplaySource(route, speed=0).fixes(threading.Event())
    return [v.fix for f in got if f is not None and (v := pipeline.feed(f, ctx)).fix]


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer(limit=1000, window_s=10.0) as s:
        yield s


def test_list_and_requeue_while_the_agent_runs(
    tmp_path: Path, route: Path, server: FakeServer
) -> None:
    cfg = write_config(tmp_path, server.url, FAST_RETRY)
    kept = _kept(route, cfg)
    poison = format_time(kept[len(kept) // 2].t)
    server.unreadable_t = {poison}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "run", "--config", str(cfg)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.wait_for(lambda: len(server.fixes) == len(kept) - 1, WAIT)
        # Everything else is uploaded and the agent idles with nothing to send.
        _wait(lambda: _status_file(cfg).get("backlog") == 0, "an empty backlog")
        r = agent("quarantine", "list", "--config", str(cfg), "--json")
        assert r.returncode == 0, r.stderr
        [doc] = json.loads(r.stdout)
        assert doc["t"] == poison and doc["reason"] == REASON
        with server.lock:
            server.unreadable_t = set()  # a fixed server (or agent) reads it now
        r = agent("quarantine", "requeue", "--config", str(cfg))
        assert r.returncode == 0 and "requeued 1 fix " in r.stdout, (r.stdout, r.stderr)
        # The running agent sends it without a restart, and counts it right.
        assert server.wait_for(lambda: poison in server.fixes, WAIT)
        _wait(lambda: _status_file(cfg).get("quarantined") == 0, "quarantined 0")
        _wait(lambda: _status_file(cfg).get("backlog") == 0, "the backlog back at 0")
        r = agent("quarantine", "list", "--config", str(cfg))
        assert r.returncode == 0 and "no quarantined fixes" in r.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 0, err
    assert len(server.fixes) == len(kept)
