"""The server goes away, the bus keeps driving, the server returns.

The first request after recovery must carry the newest fix (live map current
at once, unlike Traccar Client's oldest-first), then the backlog drains
completely while new live fixes keep arriving, and every request still leads
with the newest fix it could carry.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.fix import Fix
from agent.protocol import format_time
from agent.runner import Runner
from agent.settings import parse_settings
from tests.agent.fake_server import FakeServer, Reply

T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
WAIT = 60.0
OUTAGE_FIXES = 600
LIVE_FIXES = 100


class QueueSource:
    """A GPS the test drives: yields what is put in, None while the queue is empty."""

    # The GpsSource attributes: always reaching its (imaginary) receiver.
    connected = True
    last_error: str | None = None

    def __init__(self) -> None:
        self.q: queue.Queue[Fix] = queue.Queue()

    def fixes(self, stop: threading.Event) -> Iterator[Fix | None]:
        while not stop.is_set():
            try:
                yield self.q.get(timeout=0.05)
            except queue.Empty:
                yield None


def fix(i: int) -> Fix:
    return Fix(T0 + timedelta(seconds=i), 45.0 + i * 5e-5, 9.0, speed=6.0, heading=0.0, mode=3)


def read_status(runner: Runner) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads(runner.settings.status_path.read_text())
        return doc
    except (OSError, ValueError):
        return {}


def wait(cond: Any, timeout: float = WAIT) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return bool(cond())


@pytest.mark.parametrize("outage", ["refused", "503", "dropped"])
def test_live_first_after_outage_then_full_drain(tmp_path: Path, outage: str) -> None:
    server = FakeServer(limit=20, window_s=1.0, max_batch=50).start()
    if outage == "refused":
        server.stop()  # nothing listens on the port: connection refused
    elif outage == "503":
        server.default = Reply(503, {"error": "maintenance"}, {"Retry-After": "1"})
    else:
        server.default = Reply(drop=True)
    cfg = parse_settings(
        {
            "server": {"url": server.url, "token": "secret"},
            "buffer": {"path": str(tmp_path / "buffer.sqlite"), "synchronous": "normal"},
            "filter": {"stationary_interval_s": 0},
            "upload": {
                "interval_s": 0.02,
                "requests_per_minute": 1200,
                "backoff_base_s": 0.05,
                "backoff_max_s": 0.5,
            },
            "status": {"interval_s": 0.05},
        },
        env={},
    )
    src = QueueSource()
    runner = Runner(cfg, source=src)
    th = threading.Thread(target=runner.run, daemon=True)
    th.start()
    try:
        for i in range(OUTAGE_FIXES):
            src.q.put(fix(i))
        assert wait(lambda: read_status(runner).get("backlog") == OUTAGE_FIXES)
        assert wait(lambda: read_status(runner).get("state") == "buffering")
        failed = len(server.requests)

        # Recovery.
        if outage == "refused":
            server.start()
        else:
            server.default = None
        assert server.wait_for(lambda: any(r.status == 200 for r in server.requests[failed:]))
        first = next(r for r in server.requests[failed:] if r.status == 200)
        assert first.fixes[0]["t"] == format_time(fix(OUTAGE_FIXES - 1).t)

        # Keep driving while the backlog drains.
        for i in range(OUTAGE_FIXES, OUTAGE_FIXES + LIVE_FIXES):
            src.q.put(fix(i))
            time.sleep(0.005)
        total = OUTAGE_FIXES + LIVE_FIXES
        assert server.wait_for(lambda: len(server.fixes) == total)
        assert wait(lambda: read_status(runner).get("backlog") == 0)
        assert wait(lambda: read_status(runner).get("state") in ("ok", "no_fix"))
    finally:
        runner.stop.set()
        th.join(WAIT)
        server.stop()

    ok = [r for r in server.requests if r.status == 200]
    assert len(ok) >= total // 50  # drained in the largest batches allowed (50)
    for r in ok:
        ts = [f["t"] for f in r.fixes]
        assert ts[0] == max(ts)  # every request leads with its newest fix
        assert len(ts) <= 50
    assert 429 not in server.statuses()
    assert sorted(server.fixes) == sorted(format_time(fix(i).t) for i in range(total))
