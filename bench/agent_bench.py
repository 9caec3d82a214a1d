"""Agent benchmarks: printed as ratios against the goals, never asserted.

    .venv/bin/python bench/agent_bench.py [--quick]

1. CPU per hour of 1 Hz fixes through pipeline + buffer + encode (+ remove),
   in-process: CPU seconds / 3600 s as % of one core (goal <= 1 %).
2. The real agent process at 1 Hz in real time against the loopback server:
   CPU % of one core and peak RSS (VmHWM; goal <= 40 MB).
3. Bytes on disk per buffered fix (goal <= 100 B).
4. Backlog drain rate against the loopback server (no rate limit), and what
   the seed's limits (10 requests/min x 500 fixes) allow.

Numbers are from this machine; a Raspberry Pi 4 is roughly 3-5x slower per core.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.buffer import Buffer  # noqa: E402
from agent.fix import Fix  # noqa: E402
from agent.pipeline import Context, Pipeline  # noqa: E402
from agent.protocol import encode_batch  # noqa: E402
from agent.settings import FilterSettings, ServerSettings, UploadSettings  # noqa: E402
from agent.simulate import write_route  # noqa: E402
from agent.sources import ReplaySource  # noqa: E402
from agent.uplink import Uplink  # noqa: E402
from tests.agent.fake_server import FakeServer  # noqa: E402

START = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)


def line(
    name: str, value: float, unit: str, goal: float | None = None, better: str = "lower"
) -> None:
    if goal is None:
        print(f"{name:<44} {value:>10.3f} {unit}")
        return
    ratio = value / goal
    ok = ratio <= 1 if better == "lower" else ratio >= 1
    print(
        f"{name:<44} {value:>10.3f} {unit:<9} goal {goal:g} {unit}: "
        f"ratio {ratio:.3f} {'(ok)' if ok else '(MISSES GOAL)'}"
    )


def route_fixes(tmp: Path, seconds: int) -> list[Fix]:
    path = write_route(tmp / "route.nmea", seed=11, start=START, duration_s=seconds)
    return [f for f in ReplaySource(path, speed=0).fixes(threading.Event()) if f is not None]


def cpu_per_hour(tmp: Path, fixes: list[Fix]) -> None:
    """One hour of 1 Hz through the hot path, as the agent does it (a commit per fix)."""
    buf = Buffer(tmp / "cpu.sqlite", synchronous="full")
    pipeline = Pipeline(FilterSettings())
    ctx = Context(now=datetime.now(UTC), clock_synced=False)
    per_request = 7  # 6.6 s between uploads at 10 requests/min
    t0 = time.process_time()
    pending: list[Fix] = []
    for fix in fixes:
        kept = pipeline.feed(fix, ctx).fix
        if kept is not None:
            buf.add(kept)
            pending.append(kept)
        if len(pending) >= per_request:
            batch = buf.newest(500)
            encode_batch(batch, "bench", 0, compress=True)
            buf.remove(f.t for f in batch)
            pending.clear()
    cpu = time.process_time() - t0
    hours = len(fixes) / 3600
    line("pipeline+buffer+encode, CPU of one core", 100 * cpu / hours / 3600, "%", 1.0)
    t0 = time.process_time()
    n = sum(1 for f in ReplaySource(tmp / "route.nmea", speed=0).fixes(threading.Event()) if f)
    line(
        "  (NMEA parsing adds, per 1 Hz hour)", 100 * (time.process_time() - t0) / hours / 3600, "%"
    )
    assert n


def agent_process(tmp: Path, seconds: float) -> None:
    """The real agent at real-time 1 Hz: CPU % and peak RSS from /proc."""
    route = write_route(tmp / "live.nmea", seed=5, start=START, duration_s=int(seconds) + 60)
    with FakeServer(limit=10, window_s=60.0) as server:
        cfg = tmp / "agent.toml"
        cfg.write_text(f"""
[server]
url = "{server.url}"
token = "secret"
[gps]
source = "replay"
path = "{route}"
speed = 1
[buffer]
path = "{tmp / "live.sqlite"}"
""")
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "run", "--config", str(cfg)],
            cwd=ROOT,
            stderr=subprocess.DEVNULL,
        )
        tick = os.sysconf("SC_CLK_TCK")

        def cpu_s() -> float:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / tick

        time.sleep(5)  # imports and start-up are not the steady state
        c0, w0 = cpu_s(), time.monotonic()
        time.sleep(seconds)
        c1, w1 = cpu_s(), time.monotonic()
        status = Path(f"/proc/{proc.pid}/status").read_text()
        hwm = next(int(x.split()[1]) for x in status.splitlines() if x.startswith("VmHWM"))
        proc.terminate()
        proc.wait(30)
        got = len(server.fixes)
    line(
        f"agent process at 1 Hz ({seconds:.0f} s), CPU of one core",
        100 * (c1 - c0) / (w1 - w0),
        "%",
        1.0,
    )
    line("agent process peak RSS (VmHWM)", hwm / 1024, "MB", 40.0)
    print(f"{'  (fixes delivered meanwhile)':<44} {got:>10d}")


def bytes_per_fix(tmp: Path, fixes: list[Fix], n: int) -> None:
    buf = Buffer(tmp / "size.sqlite", synchronous="normal")
    span = fixes[-1].t - fixes[0].t + timedelta(seconds=1)
    rows, k = [], 0
    while len(rows) < n:
        rows.extend(replace(f, t=f.t + k * span) for f in fixes)
        k += 1
    for i in range(0, n, 5000):
        buf.add_many(rows[i : min(i + 5000, n)])
    buf.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    line(
        f"bytes on disk per buffered fix ({n} fixes)",
        buf.path.stat().st_size / buf.count(),
        "B",
        100.0,
    )


def drain_rate(tmp: Path, fixes: list[Fix], n: int) -> None:
    buf = Buffer(tmp / "drain.sqlite", synchronous="full")
    span = fixes[-1].t - fixes[0].t + timedelta(seconds=1)
    k = 0
    while buf.count() < n:
        buf.add_many(replace(f, t=f.t + k * span) for f in fixes[: n - buf.count()])
        k += 1
    with FakeServer(limit=10**6, window_s=60.0, enforce_rate=False, max_batch=500) as server:
        cfg = UploadSettings(interval_s=0.001, requests_per_minute=10**6)
        up = Uplink(ServerSettings(url=server.url, token="secret"), cfg, buf)
        stop = threading.Event()
        th = threading.Thread(target=up.run, args=(stop,))
        t0 = time.monotonic()
        th.start()
        server.wait_for(lambda: len(server.fixes) >= n, timeout=600)
        took = time.monotonic() - t0
        stop.set()
        th.join()
    line(f"drain rate, loopback, no rate limit ({n} fixes)", n / took, "fixes/s")
    seed = 500 / (60 / 10 * 1.1)
    line("drain rate allowed by the seed's limits", seed, "fixes/s")
    line("  = times real time at 1 Hz (goal > 1)", seed, "x", 1.0, better="higher")
    line("  a week of 1 Hz backlog drains in", 7 * 86400 / seed / 3600, "h")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller runs (for CI smoke)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        fixes = route_fixes(tmp, 3600)
        print(f"bustracker agent bench ({len(fixes)} fixes = one hour at 1 Hz)\n")
        cpu_per_hour(tmp, fixes)
        agent_process(tmp, 10 if args.quick else 30)
        bytes_per_fix(tmp, fixes, 20_000 if args.quick else 200_000)
        drain_rate(tmp, fixes, 5_000 if args.quick else 50_000)


if __name__ == "__main__":
    main()
