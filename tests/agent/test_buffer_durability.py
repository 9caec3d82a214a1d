"""The buffer as the service opens it: durable by default, and the cap never eats the live fix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.buffer import Buffer
from agent.fix import Fix
from agent.runner import Runner
from agent.settings import load_settings

T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
_FULL, _NORMAL = 2, 1  # PRAGMA synchronous values


def parked(n: int, step_s: float = 1.0) -> list[Fix]:
    return [
        Fix(T0 + timedelta(seconds=i * step_s), 45.0 + i * 1e-6, 9.0, speed=0.0, mode=3)
        for i in range(n)
    ]


def _synchronous(buffer: Buffer) -> int:
    return int(buffer.db.execute("PRAGMA synchronous").fetchone()[0])


def test_service_opens_the_buffer_with_synchronous_full_by_default(tmp_path: Path) -> None:
    # The config an installer writes: nothing about durability, so the default must hold.
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        '[server]\nurl = "http://127.0.0.1:9"\ntoken = "t"\n\n'
        '[buffer]\npath = "state/buffer.sqlite"\n'
    )
    settings = load_settings(cfg, env={})
    assert settings.buffer.synchronous == "full"
    runner = Runner(settings)  # what `bustracker-agent run` builds
    try:
        for buffer in (runner.buffer, runner.uplink.buffer, runner.open_buffer()):
            assert _synchronous(buffer) == _FULL, buffer
    finally:
        runner.uplink.client.close()
        runner.uplink.buffer.close()
        runner.buffer.close()


def test_synchronous_normal_only_when_asked(tmp_path: Path) -> None:
    assert _synchronous(Buffer(tmp_path / "a.sqlite")) == _FULL
    assert _synchronous(Buffer(tmp_path / "b.sqlite", synchronous="normal")) == _NORMAL


def test_cap_keeps_the_live_fix_when_everything_is_younger_than_an_hour(tmp_path: Path) -> None:
    # Added one at a time like the capture thread does; the cap runs on the 64th and
    # 128th add, right after the live fix went in, and can never get under 1 kB.
    b = Buffer(tmp_path / "b.sqlite", max_mb=0.001, synchronous="normal")
    fs = parked(128)
    for f in fs:
        assert b.add(f)
    assert b.newest(1) == [fs[-1]]
    assert b.count() == b.count(exact=True) >= 1


def test_cap_thinning_a_dense_young_buffer_keeps_the_live_fix(tmp_path: Path) -> None:
    b = Buffer(tmp_path / "b.sqlite", max_mb=1000, synchronous="normal")
    fs = parked(20_000, step_s=0.1)  # 2000 s of 10 Hz: dense enough to be thinned
    b.add_many(fs)
    b.max_bytes = b.used_bytes() // 2
    assert 0 < b.enforce_cap() < len(fs) - 1
    assert b.newest(1) == [fs[-1]]
    assert b.newest(b.count())[-1] == fs[0]  # thinning takes every other fix, oldest first


def test_cap_on_a_sparse_young_buffer_keeps_the_live_fix(tmp_path: Path) -> None:
    b = Buffer(tmp_path / "b.sqlite", max_mb=1000, synchronous="normal")
    fs = parked(40, step_s=60)  # 40 minutes, one a minute: too sparse to thin
    b.add_many(fs)
    b.max_bytes = 1
    assert b.enforce_cap() == 39
    assert b.newest(1) == [fs[-1]] and b.count() == b.count(exact=True) == 1
