"""kill -9 at random moments while the agent captures and uploads: nothing lost, nothing twice.

The real ``bustracker-agent run`` replays a simulated route (fast) to the fake
server and is killed with SIGKILL again and again, then restarted. Replay
starts from the top of the file after each restart, so the buffer's key and
the server's dedupe are what keep it exactly-once. The last killed run is
allowed to finish capturing the whole route (it dies while uploading), and
the final run reads an empty GPS file: it can only deliver what the killed
runs had committed. Afterwards the server holds every valid fix of the input
exactly once, unchanged, and the buffer is empty.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from agent.buffer import Buffer
from agent.pipeline import Context, Pipeline
from agent.protocol import encode_fix
from agent.settings import FilterSettings
from agent.simulate import write_route
from agent.sources import ReplaySource
from tests.agent.fake_server import FakeServer

ROOT = Path(__file__).resolve().parents[2]
WAIT = 90.0
KILLS = 8
FILTER = FilterSettings(stationary_interval_s=0, moving_interval_s=0, system_clock="unsynced")


def _buffered(path: Path) -> int:
    """Fixes still in an agent's buffer, read without disturbing the agent writing it."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    try:
        return int(conn.execute("SELECT count(*) FROM fixes").fetchone()[0])
    finally:
        conn.close()


def expected_wire(route: Path) -> dict[str, dict[str, object]]:
    """What a single uninterrupted run keeps: the same pipeline over the same input."""
    pipeline = Pipeline(FILTER)
    ctx = Context(now=datetime.now(UTC), clock_synced=False)
    out = {}
    for item in ReplaySource(route, speed=0).fixes(threading.Event()):
        if item is not None and (kept := pipeline.feed(item, ctx).fix) is not None:
            wire = encode_fix(kept)
            out[wire["t"]] = wire
    return out


def config(tmp_path: Path, url: str, gps_path: Path) -> Path:
    cfg = tmp_path / f"agent-{gps_path.stem}.toml"
    cfg.write_text(f"""
[server]
url = "{url}"
token = "secret"
[gps]
source = "replay"
path = "{gps_path}"
speed = 60
[buffer]
path = "{tmp_path / "buffer.sqlite"}"
[filter]
stationary_interval_s = 0
moving_interval_s = 0
system_clock = "unsynced"
[upload]
interval_s = 0.02
requests_per_minute = 600
max_batch = 5
backoff_base_s = 0.05
backoff_max_s = 0.3
[status]
interval_s = 0.05
""")
    return cfg


def start(cfg: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "agent", "run", "--config", str(cfg)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def last_fix_t(status: Path) -> str | None:
    try:
        doc = json.loads(status.read_text())
    except (OSError, ValueError):
        return None
    return (doc.get("last_fix") or {}).get("t")


def test_kill9_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    seed = int(os.environ.get("KILL9_SEED", time.time_ns() % 1_000_000))
    print(f"KILL9_SEED={seed}")  # shown on failure: rerun with it to reproduce
    rng = random.Random(seed)
    route = write_route(
        tmp_path / "route.nmea",
        seed=seed,
        start=datetime(2026, 11, 28, 7, tzinfo=UTC),
        duration_s=300,
    )
    empty = tmp_path / "empty.nmea"
    empty.write_text("")
    want = expected_wire(route)
    newest = max(want)
    status = tmp_path / "status.json"

    # Uploads (~45 fixes/s) lag capture (60/s), so every kill leaves a backlog behind.
    with FakeServer(limit=10, window_s=1.0, max_batch=5) as server:
        server.delay_s = 0.01  # stored on the server, answer not yet read: a kill here
        capture_cfg = config(tmp_path, server.url, route)  # must resend -> duplicate
        for round_ in range(KILLS):
            proc = start(capture_cfg)
            if round_ == KILLS - 1:
                # Let the last killed run capture the whole route, then kill it mid-upload.
                end = time.monotonic() + WAIT
                while last_fix_t(status) != newest and time.monotonic() < end:
                    time.sleep(0.01)
                assert last_fix_t(status) == newest
                time.sleep(rng.uniform(0.0, 0.3))
            else:
                time.sleep(rng.uniform(0.2, 3.0))
            proc.send_signal(signal.SIGKILL)
            proc.wait(WAIT)

        assert Buffer(tmp_path / "buffer.sqlite").count(exact=True) > 0  # still work to do
        final = start(config(tmp_path, server.url, empty))
        try:
            assert server.wait_for(lambda: set(server.fixes) >= set(want), WAIT), (
                f"missing {len(set(want) - set(server.fixes))} of {len(want)}"
            )
            # The server holds a fix once it has read the request; the agent drops it
            # from its buffer only once it has read the answer. Stopping in between is
            # at-least-once doing its job (the fix would be resent), so wait for both.
            assert server.wait_for(lambda: _buffered(tmp_path / "buffer.sqlite") == 0, WAIT)
        finally:
            final.send_signal(signal.SIGTERM)
            final.wait(WAIT)
        assert final.returncode == 0

        assert set(server.fixes) == set(want)  # nothing extra (no corrupted times)
        for t, wire in want.items():
            got = server.fixes[t]
            assert abs(got["lat"] - wire["lat"]) < 2e-7 and abs(got["lon"] - wire["lon"]) < 2e-7
            assert got.get("mode") == wire.get("mode")
        print(
            f"{len(want)} fixes, {len(server.requests)} requests, "
            f"{sum(server.received.values()) - len(want)} duplicate deliveries absorbed"
        )
    assert Buffer(tmp_path / "buffer.sqlite").count(exact=True) == 0
