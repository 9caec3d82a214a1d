"""A parked bus has a fix: thinning it to one fix per 30 s must not make it look lost."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.cli import read_status
from agent.fix import Fix
from agent.runner import Runner
from tests.agent.fake_server import FakeServer
from tests.agent.test_runner import WAIT, Running, settings

T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
NO_FIX_AFTER_S = 2.0
# 30 parked fixes (one kept by the default thinning) take 3 s here, longer than
# no_fix_after_s: an agent that counted only kept fixes would show no_fix for a
# second out of every three, while a right one never does.
GAP_S = 0.1


class ParkedSource:
    """A receiver with a fix on a parked bus: speed 0, one new epoch per GPS second."""

    # The GpsSource attributes: always reaching its (imaginary) receiver.
    connected = True
    last_error: str | None = None

    def fixes(self, stop: threading.Event) -> Iterator[Fix | None]:
        i = 0
        while not stop.is_set():
            yield Fix(
                T0 + timedelta(seconds=i),
                45.4651,
                9.1909,
                speed=0.0,
                heading=None,
                hdop=0.8,
                sats=9,
                mode=3,
            )
            i += 1
            stop.wait(GAP_S)


def test_parked_bus_with_default_thinning_is_not_no_fix(tmp_path: Path) -> None:
    with FakeServer(limit=1000, window_s=1.0) as server:
        cfg = settings(tmp_path, server.url, status={"no_fix_after_s": NO_FIX_AFTER_S})
        assert cfg.filter.stationary_interval_s == 30  # the default thinning
        with Running(Runner(cfg, source=ParkedSource())) as r:
            end = time.monotonic() + WAIT
            doc = r.status()
            # 45 GPS seconds parked: two kept fixes, the rest thinned as stationary.
            while doc.get("dropped", {}).get("stationary", 0) < 43:
                assert time.monotonic() < end, f"parked fixes not taken: {doc}"
                time.sleep(0.01)
                doc = r.status()
            seen = read_status(cfg)  # what `bustracker-agent status` shows
        # From its first fix on: before it, a loaded machine may hold the capture
        # thread back past no_fix_after_s, which is no fix, rightly.
        since_first = r.states[r.states.index("ok") :]
        assert "no_fix" not in since_first, r.states
        assert r.states[-1] == "ok" and seen["state"] == "ok"
        assert seen["last_fix"] is not None and seen["backlog"] == 0
        assert len(server.fixes) >= 2
