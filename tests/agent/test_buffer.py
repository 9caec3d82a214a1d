from __future__ import annotations

import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent import buffer as buffer_mod
from agent.buffer import SCHEMA_VERSION, Buffer, BufferError
from agent.fix import Fix

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def fixes(n: int, start: datetime = T0, step_s: float = 1.0) -> list[Fix]:
    return [
        Fix(
            start + timedelta(seconds=i * step_s),
            45.4651234 + i * 1e-6,
            9.1909876,
            alt=120.34,
            speed=6.437,
            heading=45.06,
            hdop=0.94,
            sats=8,
            mode=3,
        )
        for i in range(n)
    ]


@pytest.fixture
def buf(tmp_path: Path) -> Buffer:
    return Buffer(tmp_path / "buffer.sqlite", synchronous="normal")


def test_round_trip_keeps_wire_precision(buf: Buffer) -> None:
    f = Fix(
        T0 + timedelta(microseconds=123_456),
        -33.8688197,
        151.2092955,
        alt=-3.25,
        speed=0.005,
        heading=359.95,
        hdop=12.3,
        sats=0,
        mode=2,
    )
    assert buf.add(f)
    [back] = buf.newest(1)
    assert back.t == T0 + timedelta(milliseconds=123)  # the wire carries milliseconds
    assert (back.lat, back.lon) == (-33.8688197, 151.2092955)
    assert back.alt == -3.2  # tenths, rounded half to even
    assert back.speed == 0.0 and back.heading == 360.0 and back.hdop == 12.3
    assert (back.sats, back.mode) == (0, 2)
    assert buf.add(Fix(T0, 1.0, 2.0)) and buf.newest(2)[1] == Fix(T0, 1.0, 2.0)


def test_same_time_is_the_same_fix(buf: Buffer) -> None:
    assert buf.add(fixes(1)[0])
    assert not buf.add(fixes(1)[0])
    assert buf.count() == 1


def test_newest_first_and_remove(buf: Buffer) -> None:
    fs = fixes(10)
    assert buf.add_many(fs) == 10
    assert [f.t for f in buf.newest(3)] == [fs[9].t, fs[8].t, fs[7].t]
    assert [f.t for f in buf.newest(buf.count())[-2:]] == [fs[1].t, fs[0].t]
    assert buf.remove(f.t for f in fs[8:]) == 2
    assert buf.remove([fs[9].t]) == 0
    assert buf.count() == 8 and buf.last() == buf.newest(1)[0]
    other = Buffer(buf.path)  # a second connection shares the in-memory tally
    other.add_many(fixes(12))
    assert buf.count() == buf.count(exact=True) == 12


def test_survives_reopen_and_versions_schema(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite"
    b = Buffer(path)
    b.add_many(fixes(5))
    b.set_meta(state="ok", last_upload="2026-11-01T00:00:00Z")
    b.close()
    b2 = Buffer(path, max_mb=1)  # a config change: same file, same backlog
    assert b2.count() == 5 and b2.get_meta("state") == "ok"
    assert b2.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert b2.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    b2.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    b2.close()
    with pytest.raises(BufferError, match="newer"):
        Buffer(path)


def test_compact_on_disk(buf: Buffer) -> None:
    buf.add_many(fixes(20_000))
    buf.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    per_fix = buf.path.stat().st_size / buf.count()
    assert per_fix <= 100, per_fix


def test_cap_thins_oldest_hour_and_never_refuses(tmp_path: Path) -> None:
    b = Buffer(tmp_path / "b.sqlite", max_mb=0.25, synchronous="normal")
    fs = fixes(4 * 3600)  # four hours at 1 Hz: ~600 kB, over the cap
    for i in range(0, len(fs), 500):
        b.add_many(fs[i : i + 500])
    assert b.used_bytes() <= b.max_bytes
    assert b.newest(1)[0].t == fs[-1].t  # the live fix is never thinned
    kept = {f.t for f in b.newest(b.count())}
    last_hour = {f.t for f in fs[-3600:]}
    first_hour = {f.t for f in fs[:3600]}
    assert len(kept & first_hour) < len(kept & last_hour)
    assert fs[0].t in kept  # thinning takes every other fix, not the whole hour
    assert b.add(Fix(fs[-1].t + timedelta(seconds=1), 45.0, 9.0))


def test_cap_drops_oldest_hour_when_everything_is_sparse(tmp_path: Path) -> None:
    b = Buffer(tmp_path / "b.sqlite", max_mb=1000, synchronous="normal")
    fs = fixes(2000, step_s=120)  # 30 per hour: already sparse
    b.add_many(fs)
    b.max_bytes = b.used_bytes() // 2
    assert b.enforce_cap() > 0
    assert b.used_bytes() <= b.max_bytes
    assert b.newest(b.count())[-1].t > fs[0].t and b.newest(1)[0].t == fs[-1].t


def test_quarantine_keeps_fixes_out_of_the_queue(buf: Buffer) -> None:
    fs = fixes(3)
    buf.add_many(fs)
    buf.quarantine([fs[1]], "HTTP 422")
    assert buf.count() == 2 and buf.quarantined() == 1
    assert buf.count() == buf.count(exact=True) == 2
    assert buf.requeue_quarantine() == 1
    assert buf.count() == buf.count(exact=True) == 3 and buf.quarantined() == 0


def test_deadline_survives_restart_and_is_clamped(
    buf: Buffer, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert buf.deadline_delay("next") == 0.0
    buf.save_deadline("next", 30.0)
    assert 25.0 < buf.deadline_delay("next") <= 30.0
    # After a reboot the monotonic clock means nothing: the wall clock is used...
    monkeypatch.setattr(buffer_mod, "boot_id", lambda: "another-boot")
    assert 25.0 < buf.deadline_delay("next") <= 30.0
    # ...and a wall clock years off can't turn 30 s into years.
    monkeypatch.setattr(buffer_mod.time, "time", lambda: 0.0)
    assert buf.deadline_delay("next") == 30.0
    monkeypatch.setattr(buffer_mod.time, "time", lambda: 4e9)
    assert buf.deadline_delay("next") == 0.0


def test_read_only_view_while_writing(buf: Buffer) -> None:
    buf.add_many(fixes(10))
    ro = Buffer(buf.path, read_only=True)
    assert ro.count() == 10
    with pytest.raises(sqlite3.OperationalError):
        ro.add(fixes(11)[10])


def test_reader_and_writer_threads(buf: Buffer) -> None:
    stop = threading.Event()
    reading = threading.Event()
    seen: list[int] = []

    def reader() -> None:
        r = Buffer(buf.path)
        while not stop.is_set():
            seen.append(len(r.newest(50)))
            reading.set()
            time.sleep(0.001)
        r.close()

    th = threading.Thread(target=reader)
    th.start()
    # Without this the writer could finish before the reader's first read, and
    # the test would prove nothing (and fail on `seen` being empty).
    assert reading.wait(30)
    for f in fixes(300):
        buf.add(f)
    stop.set()
    th.join()
    assert buf.count() == 300 and seen
