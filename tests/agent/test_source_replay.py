"""ReplaySource: an NMEA file played back as if a receiver were sending it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.fix import Fix
from agent.nmea import EpochAssembler, sentence
from agent.simulate import write_route
from agent.sources import GpsSource, ReplaySource
from tests.agent.conftest import DATA, RunSource

START = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def assembled(path: Path) -> list[Fix]:
    assembler = EpochAssembler()
    text = path.read_bytes().decode("ascii", errors="replace")
    return [f for line in text.splitlines() for f in assembler.feed(line)] + assembler.flush()


def test_plays_the_whole_file_and_ends(tmp_path: Path) -> None:
    path = write_route(tmp_path / "bus.nmea", 1, START, 40, cold_start_s=5)
    source: GpsSource = ReplaySource(path, speed=0)
    items = list(source.fixes(threading.Event()))
    assert items == assembled(path)
    assert len(items) == 35


def test_dirt_in_the_file_is_skipped() -> None:
    items = list(ReplaySource(DATA / "dirty.nmea", speed=0).fixes(threading.Event()))
    assert [(f.t.second, f.mode) for f in items if f is not None] == [
        (0, 3),
        (1, 3),
        (2, 2),
        (3, 3),
        (4, 1),
        (5, 1),
        (6, 3),
    ]


def test_loop_keeps_times_increasing_past_the_end_of_the_file(tmp_path: Path) -> None:
    path = write_route(tmp_path / "bus.nmea", 2, START, 10)
    stop = threading.Event()
    fixes: list[Fix] = []
    for item in ReplaySource(path, speed=0, loop=True).fixes(stop):
        assert item is not None
        fixes.append(item)
        if len(fixes) == 35:
            stop.set()
    assert len(fixes) == 35
    assert [f.t for f in fixes] == [START + timedelta(seconds=i) for i in range(35)]
    # Same drive each lap, only later.
    assert (fixes[12].lat, fixes[12].lon) == (fixes[2].lat, fixes[2].lon)


def test_loop_over_midnight_log_keeps_dates_right() -> None:
    stop = threading.Event()
    fixes: list[Fix] = []
    for item in ReplaySource(DATA / "midnight.nmea", speed=0, loop=True).fixes(stop):
        assert item is not None
        fixes.append(item)
        if len(fixes) == 14:
            stop.set()
    assert fixes[6].t == datetime(2027, 1, 1, 0, 0, 3, tzinfo=UTC)
    assert fixes[7].t == datetime(2027, 1, 1, 0, 0, 4, tzinfo=UTC)
    assert fixes[13].t == datetime(2027, 1, 1, 0, 0, 10, tzinfo=UTC)


def test_real_time_pacing_yields_none_while_waiting_and_stops_promptly(
    tmp_path: Path, run_source: RunSource
) -> None:
    # Two fixes an hour apart: at speed 1 the second is not due for an hour.
    lines = [
        sentence("GPRMC,080000.00,A,4527.85200,N,00911.40000,E,0.0,,291126,,,A"),
        sentence("GPRMC,090000.00,A,4527.85200,N,00911.40000,E,0.0,,291126,,,A"),
    ]
    path = tmp_path / "gap.nmea"
    path.write_text("\n".join(lines) + "\n")
    source = ReplaySource(path, speed=1.0, idle_s=0.05)
    running = run_source(source)
    running.wait_for(lambda r: r.nones >= 3, "idle ticks while waiting for the next fix")
    assert [f.t.hour for f in running.fixes] == [8]
    assert source.connected
    running.stop.set()
    assert running.finished.wait(30), "replay did not stop while sleeping"
    assert [f.t.hour for f in running.fixes] == [8]


def test_faster_speed_still_plays_everything_in_order(tmp_path: Path) -> None:
    path = write_route(tmp_path / "bus.nmea", 3, START, 6)
    items = list(ReplaySource(path, speed=50.0).fixes(threading.Event()))
    fixes = [f for f in items if f is not None]
    assert [f.t for f in fixes] == [START + timedelta(seconds=i) for i in range(6)]


def test_a_file_without_fixes_ends_even_when_looping(tmp_path: Path) -> None:
    path = tmp_path / "empty.nmea"
    path.write_text("garbage\n" + sentence("GPRMC,080000.00,V,,,,,,,291126,,,N") + "\n")
    assert list(ReplaySource(path, speed=0, loop=True).fixes(threading.Event())) == []
