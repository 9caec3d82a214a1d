"""The real Runner against the loopback server, watched through its status sinks.

systemd is stood in for by what it really is to the agent: a unix datagram socket
named by NOTIFY_SOCKET, a filesystem path or (leading ``@``) an abstract name.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import sqlite3
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.buffer import Buffer
from agent.fix import Fix
from agent.runner import Runner
from agent.simulate import route_nmea
from agent.sources import SerialSource
from agent.status import ListSink, StatusFileSink, StatusSnapshot, default_sinks
from tests.agent.conftest import PtyPair
from tests.agent.fake_server import FakeServer
from tests.agent.test_runner import T0, WAIT, Running, settings
from tests.services import free_port

# "ok: gps fix, link ok, 0 buffered": what `systemctl status` shows.
STATES = {"config_error", "auth_error", "starting", "no_fix", "buffering", "draining", "ok"}
STATUS_LINE = rf"({'|'.join(STATES)}): gps \w+, link \w+, \d+ buffered"


class TapSource:
    """A moving bus whose GPS the test turns on and off (``flowing``)."""

    # The GpsSource attributes: always reaching its (imaginary) receiver.
    connected = True
    last_error: str | None = None

    def __init__(self, flowing: bool = False) -> None:
        self.flowing = threading.Event()
        if flowing:
            self.flowing.set()

    def fixes(self, stop: threading.Event) -> Iterator[Fix | None]:
        i = 0
        while not stop.is_set():
            if self.flowing.is_set():
                yield Fix(
                    T0 + timedelta(seconds=i),
                    45.0 + i * 5e-5,
                    9.0,
                    speed=6.0,
                    heading=0.0,
                    hdop=0.9,
                    sats=9,
                    mode=3,
                )
                i += 1
            else:
                yield None
            stop.wait(0.01)


class BrokenSink:
    """A sink whose hardware is gone: every call fails."""

    def __init__(self) -> None:
        self.calls = 0

    def publish(self, snapshot: StatusSnapshot) -> None:
        self.calls += 1
        raise RuntimeError("LED driver gone")

    def close(self) -> None:
        raise OSError("no such device")


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer(limit=1000, window_s=1.0) as s:
        yield s


@pytest.fixture(params=["path", "abstract"])
def notify(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[socket.socket]:
    """A bound datagram socket as NOTIFY_SOCKET, with a 200 ms watchdog for this pid."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    workdir = tempfile.mkdtemp(prefix="bt-notify-")  # short: sun_path holds 108 bytes
    if request.param == "path":
        address = f"{workdir}/notify"
        sock.bind(address)
    else:
        name = f"bustracker-test-{uuid.uuid4().hex}"
        sock.bind("\0" + name)
        address = "@" + name
    sock.settimeout(WAIT)
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    yield sock
    sock.close()
    shutil.rmtree(workdir, ignore_errors=True)


def receive(sock: socket.socket) -> dict[str, str]:
    """One sd_notify datagram as its assignments."""
    text = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in text.splitlines())


def the_rest(sock: socket.socket) -> list[dict[str, str]]:
    """Every datagram still queued; call once the runner has returned."""
    sock.setblocking(False)
    got = []
    while True:
        try:
            got.append(receive(sock))
        except BlockingIOError:
            return got


def test_state_sequence_through_a_list_sink(tmp_path: Path, server: FakeServer) -> None:
    # Long enough that even a slow machine's first tick still says "starting".
    cfg = settings(tmp_path, server.url, status={"no_fix_after_s": 3.0})
    src, sink = TapSource(), ListSink()
    runner = Runner(cfg, source=src, sinks=[StatusFileSink(cfg.status_path), sink])
    with Running(runner) as r:
        assert sink.wait_for(lambda s: s.state == "starting", WAIT)
        src.flowing.set()
        assert sink.wait_for(lambda s: s.state == "ok", WAIT)
        src.flowing.clear()  # into the depot
        assert sink.wait_for(lambda s: s.state == "no_fix", WAIT)
    assert sink.states() == ["starting", "ok", "no_fix", "stopped"]
    assert sink.gps_states() == ["searching", "fix", "searching"]
    assert sink.uplink_states() == ["connecting", "ok"]
    stopping, final = sink.snapshots[-2:]
    assert stopping.stopping and stopping.state == "no_fix"
    assert final.stopping and final.state == "stopped" and final.backlog == 0
    assert final.captured == len(server.fixes) and sink.closed
    assert r.status()["state"] == "stopped"  # the file got the same snapshots


def test_gps_without_a_receiver_is_no_device(tmp_path: Path, server: FakeServer) -> None:
    # A real gpsd source with nothing listening on its port: it keeps trying.
    gps = {
        "source": "gpsd",
        "port": free_port(),
        "connect_timeout_s": 0.2,
        "reconnect_delay_s": 0.1,
        "idle_s": 0.1,
    }
    cfg = settings(tmp_path, server.url, gps=gps)
    sink = ListSink()
    with Running(Runner(cfg, sinks=[sink])):
        snap = sink.wait_for(lambda s: s.state == "no_fix", WAIT)
    assert snap is not None and snap.healthy  # still looping: the watchdog goes on
    assert sink.gps_states() == ["no_device"]
    assert sink.uplink_states() == ["connecting"]  # nothing to send, so no answer yet


def test_a_serial_port_without_nmea_is_no_device_until_a_receiver_talks(
    tmp_path: Path, server: FakeServer, pty_pair: Callable[[], PtyPair]
) -> None:
    # A Pi's /dev/serial0 with no HAT on it opens and stays silent: the driver's GPS
    # LED must say "call the depot" (no_device), not "waiting for the sky".
    pair = pty_pair()
    gps = {"source": "serial", "device": pair.reader, "reconnect_delay_s": 0.1, "idle_s": 0.1}
    sink = ListSink()
    runner = Runner(settings(tmp_path, server.url, gps=gps), sinks=[sink])
    source = runner.source
    assert isinstance(source, SerialSource)
    with Running(runner):
        assert sink.wait_for(lambda s: s.state == "no_fix" and source.port_open, WAIT)
        pair.write(route_bytes())  # once open: pyserial's open drops what came before
        assert sink.wait_for(lambda s: s.gps == "fix", WAIT) is not None
    assert sink.gps_states()[:2] == ["no_device", "fix"]


def route_bytes() -> bytes:
    start = datetime.now(UTC).replace(microsecond=0)
    return "".join(line + "\r\n" for line in route_nmea(2, start, 5)).encode()


def test_ready_watchdog_status_and_stopping(
    tmp_path: Path, server: FakeServer, notify: socket.socket
) -> None:
    cfg = settings(tmp_path, server.url)
    with Running(Runner(cfg, source=TapSource(flowing=True))):  # the default sinks
        got = [receive(notify)]
        while not (
            sum("WATCHDOG" in m for m in got) >= 3
            and any(m.get("STATUS", "").startswith("ok:") for m in got)
        ):
            got.append(receive(notify))
    got += the_rest(notify)
    assert got[0]["READY"] == "1" and got[0]["STATUS"].split(":")[0] in STATES
    assert sum("READY" in m for m in got) == 1
    assert got[-1] == {"STOPPING": "1"}  # and nothing after it
    for m in got[1:-1]:
        assert m["WATCHDOG"] == "1" and re.fullmatch(STATUS_LINE, m["STATUS"])


def test_a_failing_sink_stops_neither_the_file_nor_the_watchdog(
    tmp_path: Path, server: FakeServer, notify: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = settings(tmp_path, server.url)
    broken, memory = BrokenSink(), ListSink()
    runner = Runner(
        cfg, source=TapSource(flowing=True), sinks=[broken, *default_sinks(cfg), memory]
    )
    with caplog.at_level(logging.INFO, logger="agent.status.fanout"), Running(runner) as r:
        r.wait_state("ok")  # the status file, written after the broken sink failed
        dogs = 0
        while dogs < 3:
            dogs += "WATCHDOG" in receive(notify)
    assert r.status()["state"] == "stopped"
    assert memory.states()[-1] == "stopped" and memory.closed
    assert broken.calls == len(memory.snapshots)  # tried at every tick, never dropped
    assert the_rest(notify)[-1] == {"STOPPING": "1"}
    said = [rec.getMessage() for rec in caplog.records if "BrokenSink" in rec.getMessage()]
    # Once per kind: one line for publish (however many ticks), one for close.
    assert len(said) == 2, said
    assert "publish failed: LED driver gone" in said[0]
    assert "close failed: no such device" in said[1]


class WedgingSource(TapSource):
    """Flows until ``wedge`` is set, then blocks inside the read without yielding:
    a serial read or gpsd socket that hangs in the kernel."""

    def __init__(self) -> None:
        super().__init__(flowing=True)
        self.wedge = threading.Event()
        self.release = threading.Event()

    def fixes(self, stop: threading.Event) -> Iterator[Fix | None]:
        for item in super().fixes(stop):
            if self.wedge.is_set():
                self.release.wait()  # not ``stop``: a hung read doesn't notice it
                self.wedge.clear()
            yield item


def test_watchdog_stops_while_the_gps_reader_is_stuck(
    tmp_path: Path, server: FakeServer, notify: socket.socket
) -> None:
    cfg = settings(tmp_path, server.url)
    src, memory = WedgingSource(), ListSink()
    runner = Runner(cfg, source=src, sinks=[*default_sinks(cfg), memory])
    # The real threshold is max(10 s, 5 x gps.idle_s); a test can't wait 10 s.
    runner.stale_after_s = 0.5
    with Running(runner):
        got = [receive(notify) for _ in range(3)]
        assert got[0]["READY"] == "1" and all(m["WATCHDOG"] == "1" for m in got)
        wedged_at = datetime.now(UTC)
        src.wedge.set()
        # After the wedge: a loaded machine may already have missed a beat before it.
        sick = memory.wait_for(lambda s: not s.healthy and s.at > wedged_at, WAIT)
        assert sick is not None
        # The systemd sink is published to before the ListSink, so everything sent
        # for the healthy ticks before ``sick`` is queued by now: read it away.
        the_rest(notify)
        # Ten more ticks (10 x 50 ms, five watchdog periods): not one datagram.
        n = len(memory.snapshots)
        assert memory.wait_for(lambda s: len(memory.snapshots) >= n + 10, WAIT)
        assert the_rest(notify) == []
        assert not memory.wait_for(lambda s: s.healthy and s.at > sick.at, 0.2)
        src.release.set()  # the read returns and fixes flow again
        notify.settimeout(WAIT)
        assert memory.wait_for(lambda s: s.healthy and s.at > sick.at, WAIT)
        assert receive(notify)["WATCHDOG"] == "1"  # fed again once it loops again
        assert not runner.capture_done  # recovered by looping, not by ending


def test_unhealthy_while_the_buffer_cannot_be_written(
    tmp_path: Path, server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The source keeps yielding and the capture loop restarts after each failure,
    # so only the failed insert itself can tell (the systemd sink acts on healthy).
    cfg = settings(tmp_path, server.url, gps={"reconnect_delay_s": 0.1})
    memory = ListSink()
    runner = Runner(cfg, source=TapSource(flowing=True), sinks=[memory])
    with Running(runner):
        assert memory.wait_for(lambda s: s.healthy and s.captured > 0, WAIT)

        # An SD card that fails every write (root ignores file modes, so the
        # failure is made where SQLite would raise it).
        def failing_add(self: object, fix: Fix) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        monkeypatch.setattr(Buffer, "add", failing_add)
        sick = memory.wait_for(lambda s: not s.healthy, WAIT)
        assert sick is not None
        assert not memory.wait_for(lambda s: s.healthy and s.at > sick.at, 0.3)
        monkeypatch.undo()
        # Healthy again with the first insert that commits after the restart.
        assert memory.wait_for(lambda s: s.healthy and s.at > sick.at, WAIT)
