"""GpsdSource against a real gpsd (gpsfake), plus a scripted socket for what gpsd
won't do on demand (hang, repeat itself exactly)."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.fix import Fix
from agent.nmea import EpochAssembler
from agent.simulate import write_route
from agent.sources import GpsdSource
from tests.agent.conftest import DATA, BareGpsd, GpsFake, PtyPair, Running, RunSource
from tests.services import free_port

pytestmark = pytest.mark.gpsd


def log_fixes(path: Path) -> list[Fix]:
    assembler = EpochAssembler()
    lines = path.read_text(errors="replace").splitlines()
    return [f for line in lines for f in assembler.feed(line)] + assembler.flush()


def quiet_for(running: Running, ticks: int) -> None:
    """Wait until the source has gone ``ticks`` idle ticks past what it has now."""
    seen = running.nones
    running.wait_for(lambda r: r.nones >= seen + ticks, f"{ticks} more idle ticks")


def test_fixes_match_the_log_one_per_epoch(
    gpsfake: GpsFake, run_source: RunSource, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agent.sources.gpsd")
    port = free_port()
    source = GpsdSource("127.0.0.1", port, read_timeout=1.5, reconnect_delay=0.05, idle_s=0.1)
    running = run_source(source)  # the reader first, so no epoch goes by unseen
    gpsfake(DATA / "route_gn.nmea", port=port)
    expected = log_fixes(DATA / "route_gn.nmea")
    assert len(expected) == 10
    running.wait_fixes(10)
    quiet_for(running, 15)  # the log is over and gpsd goes quiet; nothing more may come
    fixes = running.fixes
    assert [f.t for f in fixes] == [f.t for f in expected]
    for got, want in zip(fixes, expected, strict=True):
        assert got.lat == pytest.approx(want.lat, abs=1e-7)
        assert got.lon == pytest.approx(want.lon, abs=1e-7)
        assert got.alt == pytest.approx(want.alt, abs=0.05)
        assert got.speed == pytest.approx(want.speed, abs=0.01)
        if want.heading is None:
            assert got.heading in (None, 0.0)
        else:
            assert got.heading == pytest.approx(want.heading, abs=0.01)
        assert got.mode == 3
    # hdop/sats come from gpsd's SKY, which follows the TPV: the previous epoch's.
    hdops = {f.hdop for f in expected}
    assert all(f.hdop in hdops and f.sats == 12 for f in fixes[1:])
    # A quiet gpsd (log over) answers the probe: it is not dropped as hung.
    messages = [r.getMessage() for r in caplog.records if r.name == "agent.sources.gpsd"]
    connects = [m for m in messages if m.endswith((" connected", " is back"))]
    assert len(connects) == 1, messages
    assert source.answering
    # gpsfake closes the log's device once it is played, and gpsd says so (DEVICE
    # without "activated"): gpsd now has no receiver, and the source says that too.
    assert not source.connected and source.last_error == "gpsd answers but has no receiver open"


def test_an_epoch_reported_2d_then_3d_is_one_fix(gpsfake: GpsFake, run_source: RunSource) -> None:
    port = free_port()
    source = GpsdSource("127.0.0.1", port, read_timeout=1.5, reconnect_delay=0.05, idle_s=0.1)
    running = run_source(source)
    gpsfake(DATA / "gpsd_2d3d.nmea", port=port)
    running.wait_fixes(8)
    quiet_for(running, 15)
    fixes = running.fixes
    assert [f.t.second for f in fixes] == list(range(16, 24))
    # The first report of 08:00:20 (2D) is the one emitted, at once.
    assert [f.mode for f in fixes] == [2, 2, 2, 2, 2, 3, 3, 3]
    assert [f.alt for f in fixes[3:6]] == [None, None, 120.0]


def test_no_fix_from_gpsd_yields_none(
    tmp_path: Path, gpsfake: GpsFake, run_source: RunSource
) -> None:
    start = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
    # gpsfake replays at once (-n), client or not: a long cold start leaves a loaded machine
    # time to connect while the log is still in its no-fix part (40 s failed once in CI).
    path = write_route(tmp_path / "nofix.nmea", 1, start, 40, cold_start_s=240)
    port = free_port()
    # Idle ticks every minute: every None seen here is gpsd saying "no fix".
    source = GpsdSource("127.0.0.1", port, read_timeout=60, reconnect_delay=0.05, idle_s=60)
    running = run_source(source)
    gpsfake(path, port=port)
    running.wait_for(lambda _: source.connected, "a connection")
    running.wait_for(lambda r: r.nones >= 10, "no-fix reports")
    assert running.fixes == []
    assert source.connected


def test_reconnects_when_gpsd_goes_away_and_comes_back(
    tmp_path: Path, gpsfake: GpsFake, run_source: RunSource, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="agent.sources.gpsd")
    port = free_port()
    source = GpsdSource("127.0.0.1", port, read_timeout=1.5, reconnect_delay=0.05, idle_s=0.1)
    running = run_source(source)
    gpsfake(DATA / "route_gn.nmea", port=port)
    running.wait_fixes(3)

    caplog.clear()
    gpsfake.kill(port)  # gpsd crashes
    running.wait_for(lambda _: not source.connected, "the source to notice")
    quiet_for(running, 10)  # many reconnect attempts (every 0.05 s) meanwhile
    messages = [
        r.getMessage()
        for r in caplog.records
        if r.name == "agent.sources.gpsd" and r.levelno >= logging.WARNING
    ]
    assert len(messages) == 1, messages  # the outage is logged once, not once per retry

    later = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
    # Long enough that a gpsd slow to open its device on a busy machine still
    # gets to the fixes; the test ends at the first one anyway.
    second = write_route(tmp_path / "second.nmea", 8, later, 60, cold_start_s=10)
    gpsfake(second, port=port)  # systemd restarted it
    running.wait_for(lambda r: any(f.t >= later for f in r.fixes), "fixes from the new gpsd")
    assert source.connected
    assert any("is back" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)
    times = [f.t for f in running.fixes]
    assert times == sorted(set(times))


# -- a scripted gpsd over a real socket ----------------------------------------


class ScriptedGpsd:
    """Accepts connections and sends each one the next script (a list of JSON lines)."""

    def __init__(self, scripts: list[list[dict[str, Any]]], answer: bool = True) -> None:
        self.scripts = scripts
        self.answer = answer
        self.received: list[bytes] = []
        self.accepted = 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.server.getsockname()[1]
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self._conns.append(conn)
            script = self.scripts[self.accepted] if self.accepted < len(self.scripts) else []
            self.accepted += 1
            threading.Thread(target=self._talk, args=(conn, script), daemon=True).start()

    def _talk(self, conn: socket.socket, script: list[dict[str, Any]]) -> None:
        try:
            self.received.append(conn.recv(4096))  # the ?WATCH
            if self.answer:
                conn.sendall(b'{"class":"VERSION","release":"3.22"}\n')
                conn.sendall(b"".join(json.dumps(obj).encode() + b"\n" for obj in script))
            while data := conn.recv(4096):
                self.received.append(data)  # probes: answered only if alive
                if self.answer:
                    conn.sendall(b'{"class":"VERSION","release":"3.22"}\n')
        except OSError:
            return

    def close(self) -> None:
        self.server.close()
        for conn in self._conns:
            conn.close()


@pytest.fixture
def scripted() -> Iterator[list[ScriptedGpsd]]:
    servers: list[ScriptedGpsd] = []
    yield servers
    for server in servers:
        server.close()


def tpv(second: int, **extra: Any) -> dict[str, Any]:
    base = {"class": "TPV", "mode": 3, "time": f"2026-11-29T08:00:{second:02d}.000Z"}
    base.update(lat=45.46, lon=9.19, altMSL=120.5, alt=999.0, speed=5.5, track=90.0)
    base.update(extra)
    return base


def test_repeated_and_improved_reports_of_one_time_are_one_fix(
    scripted: list[ScriptedGpsd], run_source: RunSource
) -> None:
    sky = {"class": "SKY", "hdop": 0.8, "uSat": 9}
    sky_list = {"class": "SKY", "hdop": 1.1, "satellites": [{"used": True}] * 6 + [{"used": False}]}
    script = [
        {"class": "TPV", "mode": 1},  # no fix
        tpv(1, mode=0),
        tpv(2, lat=None),
        sky,
        tpv(3, mode=2, altMSL=None, alt=None),
        tpv(3),  # the same epoch, better: not a second fix
        tpv(3),  # the same report again
        sky_list,
        tpv(4, altMSL=None, alt=118.0),  # older gpsd: MSL altitude is "alt"
        {"class": "TPV", "mode": 3, "lat": 45.0, "lon": 9.0},  # no time: no fix
    ]
    server = ScriptedGpsd([script])
    scripted.append(server)
    source = GpsdSource("127.0.0.1", server.port, read_timeout=60, idle_s=60)
    running = run_source(source)
    running.wait_for(lambda r: len(r.items) >= 6, "all reports")
    assert running.items == [
        None,
        None,
        None,
        Fix(
            t=datetime(2026, 11, 29, 8, 0, 3, tzinfo=UTC),
            lat=45.46,
            lon=9.19,
            alt=None,
            speed=5.5,
            heading=90.0,
            hdop=0.8,
            sats=9,
            mode=2,
        ),
        Fix(
            t=datetime(2026, 11, 29, 8, 0, 4, tzinfo=UTC),
            lat=45.46,
            lon=9.19,
            alt=118.0,
            speed=5.5,
            heading=90.0,
            hdop=1.1,
            sats=6,
            mode=3,
        ),
        None,
    ]
    assert server.received[0] == b'?WATCH={"enable":true,"json":true}\n'


def test_a_hung_gpsd_never_blocks_the_loop_and_is_replaced(
    scripted: list[ScriptedGpsd], run_source: RunSource
) -> None:
    server = ScriptedGpsd([], answer=False)  # accepts, reads, never says a word
    scripted.append(server)
    source = GpsdSource(
        "127.0.0.1", server.port, read_timeout=0.2, reconnect_delay=0.05, idle_s=0.05
    )
    running = run_source(source)
    running.wait_for(lambda r: r.nones >= 20, "idle ticks from a silent connection")
    running.wait_for(lambda _: server.accepted >= 2, "a fresh connection after the probe")
    assert b"?VERSION;\n" in server.received
    assert running.fixes == []
    assert not source.connected  # accepting TCP is not being connected to gpsd


def test_nothing_listening_yields_none_and_stops_on_request(run_source: RunSource) -> None:
    source = GpsdSource("127.0.0.1", free_port(), reconnect_delay=0.05, idle_s=0.05)
    running = run_source(source)
    running.wait_for(lambda r: r.nones >= 5, "idle ticks while gpsd is away")
    assert not source.connected
    running.stop.set()
    assert running.finished.wait(30)


def test_a_gpsd_without_a_receiver_is_not_a_reached_receiver_until_one_is_plugged(
    tmp_path: Path, run_source: RunSource, pty_pair: Callable[[], PtyPair], bare_gpsd: BareGpsd
) -> None:
    # gpsd answers clients with no device open (DEVICES is empty): the driver's LED
    # must say "no GPS receiver", not "searching", until gpsd opens one.
    source = GpsdSource(
        "127.0.0.1", bare_gpsd.port, read_timeout=1.5, reconnect_delay=0.05, idle_s=0.1
    )
    running = run_source(source)
    running.wait_for(lambda _: source.answering, "gpsd to answer")
    quiet_for(running, 5)
    assert not source.connected
    assert source.last_error == "gpsd answers but has no receiver open"
    pair = pty_pair()
    # gpsd drops root once started, and a pty is its creator's alone (udev gives a
    # real receiver's node to group dialout, which gpsd joins).
    os.chmod(pair.reader, 0o666)
    bare_gpsd.add(pair.reader)
    running.wait_for(lambda _: source.connected, "gpsd to open the receiver")
    start = datetime.now(UTC).replace(microsecond=0)
    pair.write(write_route(tmp_path / "route.nmea", 4, start, 20).read_bytes())
    running.wait_fixes(3)
