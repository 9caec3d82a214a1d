"""Each status sink on its own, with real files and real sockets; the state rules."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

import pytest

from agent import __version__
from agent.fix import Fix
from agent.status import Fanout, ListSink, StatusFileSink, StatusSnapshot, SystemdSink
from agent.status.snapshot import gps_state, overall_state, uplink_state

AT = datetime(2026, 11, 29, 8, 0, 10, tzinfo=UTC)
SNAP = StatusSnapshot(
    at=AT,
    state="draining",
    gps="fix",
    uplink="backlog",
    healthy=True,
    backlog=1834,
    captured=2000,
    dropped=MappingProxyType({"stationary": 3}),
    quarantined=1,
    last_fix=Fix(datetime(2026, 11, 29, 8, 0, 9, tzinfo=UTC), 45.46510001, 9.1909, mode=3),
    last_upload="2026-11-29T08:00:07Z",
    last_error="ConnectError: [Errno 111] Connection refused",
    batch_size=500,
    upload_interval_s=6.6,
    next_attempt_in_s=2.5,
    requests=12,
)


TAIL = ": gps fix, link backlog, 1834 buffered"  # SNAP's STATUS= line after the state


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Flaky:
    """A sink that fails with ``error`` while one is set."""

    def __init__(self) -> None:
        self.error: Exception | None = RuntimeError("broken")

    def publish(self, snapshot: StatusSnapshot) -> None:
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        pass


# -- the rules -------------------------------------------------------------------------


def test_uplink_and_gps_substates() -> None:
    assert uplink_state("config_error", 0, 0) == "config_error"
    assert uplink_state("auth_error", 0, 0) == "auth_error"
    assert uplink_state("buffering", 10, 500) == "offline"
    assert uplink_state("starting", 10, 0) == "connecting"
    assert uplink_state("ok", 500, 500) == "ok"
    assert uplink_state("ok", 501, 500) == "backlog"
    assert uplink_state("ok", 1, 0) == "ok"  # no batch size known yet counts as one
    assert gps_state(fix_recent=True, device_present=False) == "fix"
    assert gps_state(fix_recent=False, device_present=True) == "searching"
    assert gps_state(fix_recent=False, device_present=False) == "no_device"


@pytest.mark.parametrize(
    ("gps", "uplink", "starting_up", "state"),
    [
        ("no_device", "config_error", True, "config_error"),
        ("fix", "auth_error", False, "auth_error"),
        ("searching", "ok", True, "starting"),
        ("searching", "offline", False, "no_fix"),
        ("no_device", "ok", False, "no_fix"),
        ("fix", "offline", False, "buffering"),
        ("fix", "connecting", False, "starting"),
        ("fix", "backlog", False, "draining"),
        ("fix", "ok", False, "ok"),
    ],
)
def test_first_rule_wins(gps: str, uplink: str, starting_up: bool, state: str) -> None:
    assert overall_state(gps, uplink, starting_up=starting_up) == state  # type: ignore[arg-type]


# -- the status file -------------------------------------------------------------------


def test_status_file_format(tmp_path: Path) -> None:
    path = tmp_path / "state" / "status.json"
    sink = StatusFileSink(path)
    sink.publish(SNAP)
    sink.close()
    doc = json.loads(path.read_text())
    assert list(doc) == [
        "state",
        "backlog",
        "last_fix",
        "last_upload",
        "last_error",
        "updated_at",
        "pid",
        "version",
        "captured",
        "dropped",
        "quarantined",
        "batch_size",
        "upload_interval_s",
        "next_attempt_in_s",
        "requests",
    ]
    assert doc["last_fix"] == {"t": "2026-11-29T08:00:09Z", "lat": 45.4651, "lon": 9.1909}
    assert doc["updated_at"] == "2026-11-29T08:00:10Z"
    assert (doc["pid"], doc["version"]) == (os.getpid(), __version__)
    assert doc["dropped"] == {"stationary": 3} and doc["state"] == "draining"
    assert [p.name for p in path.parent.iterdir()] == ["status.json"]  # no tmp left


def test_status_file_that_cannot_be_written_raises(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("")
    sink = StatusFileSink(tmp_path / "not-a-dir" / "status.json")
    with pytest.raises(OSError):
        sink.publish(SNAP)


# -- fan-out ---------------------------------------------------------------------------


def test_fanout_contains_failures_and_logs_once_per_kind(caplog: pytest.LogCaptureFixture) -> None:
    clock, flaky, memory = Clock(), Flaky(), ListSink()
    fan = Fanout([flaky, memory], clock=clock)
    with caplog.at_level(logging.INFO, logger="agent.status.fanout"):
        for _ in range(5):
            fan.publish(SNAP)
        assert len(memory.snapshots) == 5
        assert len(caplog.records) == 1 and "Flaky: publish failed: broken" in caplog.text
        clock.now += 301
        fan.publish(SNAP)
        assert "still failing (5 more times)" in caplog.records[-1].getMessage()
        flaky.error = OSError("read-only file system")  # another kind: said at once
        fan.publish(SNAP)
        assert "publish failed: read-only file system" in caplog.records[-1].getMessage()
        flaky.error = None
        fan.publish(SNAP)
        fan.publish(SNAP)
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 4 and said[-1] == "status sink Flaky works again"
    assert len(memory.snapshots) == 9


# -- systemd ---------------------------------------------------------------------------


@pytest.fixture
def listener() -> Iterator[tuple[socket.socket, str]]:
    """An abstract-namespace datagram socket and its NOTIFY_SOCKET spelling."""
    name = f"bustracker-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.setblocking(False)  # delivery is synchronous: a datagram sent is already queued
    yield sock, "@" + name
    sock.close()


def queued(sock: socket.socket) -> list[str]:
    got = []
    while True:
        try:
            got.append(sock.recv(4096).decode())
        except BlockingIOError:
            return got


def test_watchdog_only_while_healthy(listener: tuple[socket.socket, str]) -> None:
    sock, address = listener
    clock = Clock()
    sink = SystemdSink(address, watchdog_s=10.0, clock=clock)
    sick = replace(SNAP, healthy=False, state="starting")
    sink.publish(sick)
    assert queued(sock) == []  # not ready until the health check passes
    sink.publish(replace(SNAP, state="ok"))
    assert queued(sock) == ["READY=1\nWATCHDOG=1\nSTATUS=ok: gps fix, link backlog, 1834 buffered"]
    sink.publish(replace(SNAP, state="ok"))
    assert queued(sock) == []  # not due yet
    clock.now += 10
    sink.publish(sick)
    assert queued(sock) == []  # due, but a wedged agent must be restarted, not fed
    sink.publish(SNAP)
    assert queued(sock) == ["WATCHDOG=1\nSTATUS=draining: gps fix, link backlog, 1834 buffered"]
    sink.publish(replace(SNAP, stopping=True))
    clock.now += 10
    sink.publish(SNAP)
    assert queued(sock) == ["STOPPING=1"]
    sink.close()


def test_without_watchdog_status_goes_on_change(listener: tuple[socket.socket, str]) -> None:
    sock, address = listener
    sink = SystemdSink.from_environ({"NOTIFY_SOCKET": address})
    assert sink is not None and sink.watchdog_s is None
    for state in ("starting", "starting", "ok", "ok", "no_fix"):
        sink.publish(replace(SNAP, state=state))  # type: ignore[arg-type]
    assert queued(sock) == [
        f"READY=1\nSTATUS=starting{TAIL}",
        f"STATUS=ok{TAIL}",
        f"STATUS=no_fix{TAIL}",
    ]
    sink.close()


def test_ready_is_sent_again_when_it_could_not_be_delivered() -> None:
    workdir = tempfile.mkdtemp(prefix="bt-notify-")
    try:
        address = f"{workdir}/notify"
        sink = SystemdSink(address, watchdog_s=None)
        with pytest.raises(OSError):
            sink.publish(SNAP)  # systemd's socket isn't there (yet)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(address)
        sock.setblocking(False)
        sink.publish(SNAP)
        assert queued(sock) == ["READY=1\nSTATUS=draining: gps fix, link backlog, 1834 buffered"]
        sink.close()
        sock.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_watchdog_pid_of_another_process_is_not_ours() -> None:
    env = {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"}
    assert SystemdSink.from_environ(env).watchdog_s is None  # type: ignore[union-attr]
    env["WATCHDOG_PID"] = str(os.getpid())
    assert SystemdSink.from_environ(env).watchdog_s == 2.0  # type: ignore[union-attr]


# -- the in-memory sink ----------------------------------------------------------------


def test_list_sink_waits_for_a_snapshot_and_gives_up_when_closed() -> None:
    sink = ListSink()
    sink.publish(replace(SNAP, state="starting"))
    sink.publish(replace(SNAP, state="starting"))
    sink.publish(SNAP)
    assert sink.states() == ["starting", "draining"]
    assert sink.wait_for(lambda s: s.state == "draining", 0.0) == SNAP
    sink.close()
    assert sink.wait_for(lambda s: s.state == "ok", 30.0) is None  # closed: no wait
