"""SerialSource against real ttys: a socat pty pair stands in for the receiver's UART.

The source opens ``tmp/gps0``, a symlink to the pty, as it would open the
``/dev/gps0`` that udev creates (``SYMLINK+="gps0"``) and removes on unplug.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.nmea import EpochAssembler, sentence
from agent.simulate import route_nmea
from agent.sources import SerialSource
from tests.agent.conftest import DATA, PtyPair, Running, RunSource

START = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def plug(link: Path, pair: PtyPair) -> None:
    if link.is_symlink():
        link.unlink()
    link.symlink_to(pair.reader)


def source_for(link: Path) -> SerialSource:
    return SerialSource(str(link), baud=9600, read_timeout=0.3, reopen_delay=0.05, idle_s=0.1)


def epochs(seconds: range) -> bytes:
    lines = list(route_nmea(5, START, seconds.stop))
    firsts = [i for i, line in enumerate(lines) if line[3:6] == "RMC"]  # each epoch's first
    lines = lines[firsts[seconds.start] :]
    return ("\r\n".join(lines) + "\r\n").encode()


def wait_open(running: Running, source: SerialSource, is_open: bool = True) -> None:
    running.wait_for(lambda _: source.port_open is is_open, f"port_open={is_open}")


def test_fixes_from_the_port_match_the_receiver_output(
    tmp_path: Path, pty_pair: Callable[[], PtyPair], run_source: RunSource
) -> None:
    pair = pty_pair()
    plug(tmp_path / "gps0", pair)
    source = source_for(tmp_path / "gps0")
    running = run_source(source)
    wait_open(running, source)
    data = (DATA / "dirty.nmea").read_bytes()
    for i in range(0, len(data), 37):  # bytes trickle in, lines split across reads
        pair.write(data[i : i + 37])
    fixes = running.wait_fixes(7)
    assembler = EpochAssembler()
    expected = [
        f for line in data.decode("ascii", "replace").splitlines() for f in assembler.feed(line)
    ]
    assert fixes == expected + assembler.flush()


def test_a_receiver_going_quiet_mid_epoch_does_not_hold_the_fix_back(
    tmp_path: Path, pty_pair: Callable[[], PtyPair], run_source: RunSource
) -> None:
    pair = pty_pair()
    plug(tmp_path / "gps0", pair)
    source = source_for(tmp_path / "gps0")
    running = run_source(source)
    wait_open(running, source)
    # An RMC whose GGA never comes, then silence: the fix still arrives.
    pair.write(
        sentence("GNRMC,080000.00,A,4527.85200,N,00911.40000,E,3.0,90.0,291126,,,A").encode()
        + b"\r\n"
    )
    [fix] = running.wait_fixes(1)
    assert fix.t == START and fix.alt is None


def test_garbage_at_the_wrong_baud_rate_is_survived(
    tmp_path: Path, pty_pair: Callable[[], PtyPair], run_source: RunSource
) -> None:
    pair = pty_pair()
    plug(tmp_path / "gps0", pair)
    source = source_for(tmp_path / "gps0")
    running = run_source(source)
    wait_open(running, source)
    rng = random.Random(7)
    noise = bytes(rng.randrange(256) for _ in range(20_000)).replace(b"\n", b"")
    pair.write(noise + b"\n" + epochs(range(0, 4)))
    fixes = running.wait_fixes(4)
    assert [f.t for f in fixes] == [START + timedelta(seconds=i) for i in range(4)]
    assert running.error is None


def test_an_open_port_is_connected_only_while_nmea_comes(
    tmp_path: Path, pty_pair: Callable[[], PtyPair], run_source: RunSource
) -> None:
    # A Pi's /dev/serial0 opens with no HAT on it; a wrong baud reads as garbage.
    # Either way the receiver is not reached: the driver's LED says no device.
    pair = pty_pair()
    plug(tmp_path / "gps0", pair)
    source = SerialSource(str(tmp_path / "gps0"), read_timeout=0.3, reopen_delay=0.05,
                          idle_s=0.1, quiet_s=0.5)  # fmt: skip
    running = run_source(source)
    wait_open(running, source)
    rng = random.Random(3)
    pair.write(bytes(rng.randrange(128, 256) for _ in range(2_000)) + b"\r\n")
    running.wait_for(lambda _: source.unreadable > 0, "the garbage to be read")
    assert not source.connected
    pair.write(epochs(range(0, 2)))
    running.wait_for(lambda _: source.connected, "NMEA to connect it")
    # Then silence past quiet_s: the port is open, the receiver is not talking.
    running.wait_for(lambda _: not source.connected, "silence to disconnect it")
    assert source.port_open


def test_missing_device_then_plugged_in(
    tmp_path: Path, pty_pair: Callable[[], PtyPair], run_source: RunSource
) -> None:
    link = tmp_path / "gps0"
    source = source_for(link)
    running = run_source(source)
    # No device: the loop keeps ticking (watchdog) and says it is not connected.
    running.wait_for(lambda r: r.nones >= 3, "idle ticks without a device")
    assert not source.connected and running.fixes == []
    pair = pty_pair()
    plug(link, pair)
    wait_open(running, source)
    pair.write(epochs(range(0, 3)))
    assert len(running.wait_fixes(3)) == 3


def test_unplug_and_replug_resumes_and_logs_the_outage_once(
    tmp_path: Path,
    pty_pair: Callable[[], PtyPair],
    run_source: RunSource,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="agent.sources.serial")
    link = tmp_path / "gps0"
    first = pty_pair()
    plug(link, first)
    source = source_for(link)
    running = run_source(source)
    wait_open(running, source)
    first.write(epochs(range(0, 5)))
    running.wait_fixes(5)

    first.unplug()
    link.unlink()  # udev removes the symlink with the device
    wait_open(running, source, is_open=False)
    ticks = running.nones
    # Let it retry many times (reopen_delay is 0.05 s) before the device returns.
    running.wait_for(lambda r: r.nones >= ticks + 10, "retries while unplugged")

    second = pty_pair()  # a new tty behind the same name, as after a real replug
    plug(link, second)
    wait_open(running, source)
    second.write(epochs(range(5, 10)))
    fixes = running.wait_fixes(10)
    assert [f.t for f in fixes] == [START + timedelta(seconds=i) for i in range(10)]

    records = [r for r in caplog.records if r.name == "agent.sources.serial"]
    warnings = [r.getMessage() for r in records if r.levelno >= logging.WARNING]
    assert len(warnings) <= 2, warnings  # "lost", maybe "unavailable": not one per retry
    assert any("lost" in w for w in warnings)
    assert any("is back" in r.getMessage() for r in records if r.levelno == logging.INFO)
