"""Quarantine (D8) with the real uplink and runner against the loopback server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from agent import __version__
from agent.buffer import Buffer
from agent.protocol import format_time
from agent.runner import Runner
from agent.uplink import _SINGLE_UNREADABLE_LIMIT
from tests.agent.fake_server import FakeServer, Reply
from tests.agent.test_runner import WAIT, ListSource, Running, moving, settings
from tests.agent.test_uplink import FAST, fixes, make, running, wire_t


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer(limit=1000, window_s=1.0) as s:
        yield s


@pytest.fixture
def buf(tmp_path: Path) -> Buffer:
    return Buffer(tmp_path / "buffer.sqlite", synchronous="normal")


def test_single_fixes_that_keep_failing_stop_the_quarantine(
    server: FakeServer, buf: Buffer
) -> None:
    # A server that can read nothing at all: every fix would fail alone too.
    fs = fixes(16)
    buf.add_many(fs)
    server.default = Reply(422, {"error": "body unreadable"})
    up = make(server, buf, replace(FAST, gzip=False))
    with running(up):
        assert server.wait_for(lambda: len(server.requests) >= 30)
        view = Buffer(buf.path)
        assert view.quarantined() == _SINGLE_UNREADABLE_LIMIT == 3
        assert view.count(exact=True) == 16 - 3  # the rest stays queued, nothing dropped
        left = [wire_t(f) for f in view.newest(16)]
        # No more bisection: whole batches again, live first, backing off.
        for r in server.requests[-5:]:
            assert [f["t"] for f in r.fixes] == left, [len(r.fixes) for r in server.requests]
        assert up.status.phase == "buffering" and "backing off" in (up.status.last_error or "")
        server.default = None  # the server reads again: everything left goes through
        assert server.wait_for(lambda: set(server.fixes) == set(left))
    assert Buffer(buf.path).quarantined() == 3


def _quarantine_one(path: Path, version: str) -> str:
    b = Buffer(path)
    fs = [f for f in moving(3, start=-100) if f]
    b.add_many(fs)
    b.quarantine([fs[1]], "HTTP 422: body unreadable")
    b.set_meta(quarantine_version=version)
    b.close()
    return format_time(fs[1].t)


def test_a_new_agent_version_requeues_the_quarantine_at_start(tmp_path: Path) -> None:
    with FakeServer(limit=1000, window_s=1.0) as server:
        cfg = settings(tmp_path, server.url)
        t = _quarantine_one(cfg.buffer.path, version="0.0.0-older")
        with Running(Runner(cfg, source=ListSource([]))):
            assert server.wait_for(lambda: len(server.fixes) == 3, WAIT), server.fixes
        assert t in server.fixes
        b = Buffer(cfg.buffer.path)
        assert b.quarantined() == 0 and b.count(exact=True) == 0
        assert b.get_meta("quarantine_version") == __version__


def test_the_same_version_leaves_the_quarantine_alone(tmp_path: Path) -> None:
    with FakeServer(limit=1000, window_s=1.0) as server:
        cfg = settings(tmp_path, server.url)
        t = _quarantine_one(cfg.buffer.path, version=__version__)
        with Running(Runner(cfg, source=ListSource([]))) as r:
            assert server.wait_for(lambda: len(server.fixes) == 2, WAIT)
            assert r.wait_state("no_fix")["quarantined"] == 1
        assert t not in server.fixes
        assert Buffer(cfg.buffer.path).quarantined() == 1
