"""The runner in-process: real buffer, real HTTP (fake_server), a stand-in GPS source."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.buffer import Buffer
from agent.fix import Fix
from agent.runner import ClockCheck, Runner, kernel_clock_synced
from agent.settings import Settings, parse_settings
from agent.status import SystemdSink
from tests.agent.fake_server import FakeServer, Reply

T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
WAIT = 30.0


class ListSource:
    """Yields the given fixes, then None forever (a GPS that went quiet)."""

    # The GpsSource attributes: always reaching its (imaginary) receiver.
    connected = True
    last_error: str | None = None

    def __init__(self, fixes: list[Fix | None], gap: float = 0.005) -> None:
        self.items = fixes
        self.gap = gap

    def fixes(self, stop: threading.Event) -> Iterator[Fix | None]:
        for item in self.items:
            if stop.is_set():
                return
            yield item
            stop.wait(self.gap)
        while not stop.is_set():
            yield None
            stop.wait(0.05)


def moving(n: int, start: int = 0) -> list[Fix | None]:
    return [
        Fix(
            T0 + timedelta(seconds=start + i),
            45.0 + (start + i) * 5e-5,
            9.0,
            speed=6.0,
            heading=0.0,
            hdop=0.9,
            sats=9,
            mode=3,
        )
        for i in range(n)
    ]


def settings(tmp_path: Path, url: str, **sections: dict[str, Any]) -> Settings:
    data: dict[str, dict[str, Any]] = {
        "server": {"url": url, "token": "secret"},
        "gps": {"source": "gpsd"},
        "buffer": {"path": str(tmp_path / "buffer.sqlite"), "synchronous": "normal"},
        "upload": {
            "interval_s": 0.05,
            "requests_per_minute": 6000,
            "backoff_base_s": 0.05,
            "backoff_max_s": 0.2,
        },
        "status": {"interval_s": 0.05, "no_fix_after_s": 0.5},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return parse_settings(data, env={})


class Running:
    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.thread = threading.Thread(target=runner.run, daemon=True)
        self.states: list[str] = []

    def status(self) -> dict[str, Any]:
        try:
            doc: dict[str, Any] = json.loads(self.runner.settings.status_path.read_text())
        except (OSError, ValueError):
            return {}
        if not self.states or self.states[-1] != doc["state"]:
            self.states.append(doc["state"])
        return doc

    def wait_state(self, state: str) -> dict[str, Any]:
        end = time.monotonic() + WAIT
        while time.monotonic() < end:
            doc = self.status()
            if doc.get("state") == state:
                return doc
            time.sleep(0.02)
        raise AssertionError(f"never reached {state}: saw {self.states}")

    def __enter__(self) -> Running:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.runner.stop.set()
        self.thread.join(WAIT)
        assert not self.thread.is_alive()


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer(limit=1000, window_s=1.0) as s:
        yield s


def test_captures_uploads_and_reports_ok(tmp_path: Path, server: FakeServer) -> None:
    src = ListSource(moving(30))
    with Running(Runner(settings(tmp_path, server.url), source=src)) as r:
        assert server.wait_for(lambda: len(server.fixes) == 30, WAIT)
        doc = r.wait_state("no_fix")  # the source went quiet after 30 fixes
    assert doc["backlog"] == 0 and doc["last_fix"]["t"] == "2026-11-29T08:00:29Z"
    assert doc["last_upload"] is not None and doc["captured"] == 30
    assert r.status()["state"] == "stopped"


def test_missing_token_keeps_capturing(tmp_path: Path, server: FakeServer) -> None:
    cfg = parse_settings(
        {
            "server": {"url": server.url, "token_file": str(tmp_path / "tok")},
            "buffer": {"path": str(tmp_path / "buffer.sqlite")},
            "status": {"interval_s": 0.05},
        },
        env={},
    )
    with Running(Runner(cfg, source=ListSource(moving(20)))) as r:
        doc = r.wait_state("config_error")
        assert "server.token" in doc["last_error"]
        end = time.monotonic() + WAIT
        while r.status().get("backlog") != 20 and time.monotonic() < end:
            time.sleep(0.02)
        assert r.status()["backlog"] == 20  # buffered, not lost, not crashed
    assert server.requests == []


def test_auth_error_state(tmp_path: Path, server: FakeServer) -> None:
    cfg = settings(tmp_path, server.url, server={"token": "wrong"})
    with Running(Runner(cfg, source=ListSource(moving(5000), gap=0.01))) as r:
        doc = r.wait_state("auth_error")
    assert "401" in doc["last_error"]
    assert server.statuses() == [401]


def test_buffering_while_server_fails_then_ok(tmp_path: Path, server: FakeServer) -> None:
    server.default = Reply(503, {"error": "maintenance"})
    src = ListSource(moving(5000), gap=0.01)
    with Running(Runner(settings(tmp_path, server.url), source=src)) as r:
        doc = r.wait_state("buffering")
        assert doc["last_error"].startswith("HTTP 503")
        server.default = None
        r.wait_state("ok")


def test_draining_when_backlog_exceeds_one_batch(tmp_path: Path) -> None:
    with FakeServer(limit=2, window_s=1.0, max_batch=5) as server:
        cfg = settings(tmp_path, server.url, upload={"max_batch": 5})
        Buffer(cfg.buffer.path).add_many(f for f in moving(60, start=-100) if f)
        with Running(Runner(cfg, source=ListSource(moving(3000), gap=0.01))) as r:
            r.wait_state("draining")
        assert 429 not in server.statuses()


def test_no_fix_when_gps_reports_invalid_epochs(tmp_path: Path, server: FakeServer) -> None:
    invalid: list[Fix | None] = [
        Fix(T0 + timedelta(seconds=i), 45.0, 9.0, mode=1) for i in range(2000)
    ]
    with Running(Runner(settings(tmp_path, server.url), source=ListSource(invalid, 0.01))) as r:
        doc = r.wait_state("no_fix")
    assert doc["backlog"] == 0 and doc["last_fix"] is None


@pytest.fixture
def notify_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    name = f"bustracker-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(WAIT)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    yield sock
    sock.close()


def test_systemd_ready_and_watchdog(
    tmp_path: Path, server: FakeServer, notify_socket: socket.socket
) -> None:
    with Running(Runner(settings(tmp_path, server.url), source=ListSource(moving(10)))):
        got = [notify_socket.recv(4096).decode() for _ in range(3)]
    assert got[0].startswith("READY=1")
    assert got[1].startswith("WATCHDOG=1") and got[2].startswith("WATCHDOG=1")


class HangingSource:
    """Yields a little, then blocks without yielding: a wedged GPS read."""

    # The GpsSource attributes: always reaching its (imaginary) receiver.
    connected = True
    last_error: str | None = None

    def __init__(self) -> None:
        self.hung = threading.Event()

    def fixes(self, stop: threading.Event) -> Iterator[Fix | None]:
        for _ in range(5):
            yield None
            stop.wait(0.02)
        self.hung.set()
        stop.wait()
        return


def test_no_watchdog_when_capture_is_stuck(
    tmp_path: Path, server: FakeServer, notify_socket: socket.socket
) -> None:
    src = HangingSource()
    runner = Runner(settings(tmp_path, server.url), source=src)
    runner.stale_after_s = 0.3
    with Running(runner):
        assert notify_socket.recv(4096).startswith(b"READY=1")
        assert src.hung.wait(WAIT)
        end = time.monotonic() + WAIT
        while runner.healthy() and time.monotonic() < end:
            time.sleep(0.02)
        assert not runner.healthy()
        notify_socket.settimeout(0.05)
        with contextlib.suppress(TimeoutError):
            while True:  # drain what was sent before the hang was noticed
                notify_socket.recv(4096)
        notify_socket.settimeout(1.0)
        with pytest.raises(TimeoutError):
            notify_socket.recv(4096)  # no WATCHDOG=1 while capture is wedged


def test_no_systemd_sink_outside_systemd() -> None:
    assert SystemdSink.from_environ({"WATCHDOG_USEC": "200000"}) is None


def test_clock_check_modes() -> None:
    assert ClockCheck("synced")() is True
    assert ClockCheck("unsynced")() is False
    assert ClockCheck("auto")() == kernel_clock_synced()


def test_the_clock_check_starts_no_process(monkeypatch: pytest.MonkeyPatch) -> None:
    # It runs once a minute on the bus; ctypes.util.find_library("c") ran `ldconfig -p`
    # each time, a stray child the demo's stop test caught as a defunct process.
    started: list[object] = []
    real = subprocess.Popen

    def popen(*args: Any, **kwargs: Any) -> Any:
        started.append(args[0] if args else kwargs.get("args"))
        return real(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", popen)
    kernel_clock_synced()
    assert started == []
