"""The uplink against a real HTTP server on loopback (tests/agent/fake_server.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest

from agent.buffer import Buffer
from agent.fix import Fix
from agent.protocol import format_time
from agent.settings import ServerSettings, UploadSettings
from agent.uplink import DEADLINE_KEY, Planner, Uplink
from tests.agent.fake_server import FakeServer, Reply

T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
FAST = UploadSettings(
    interval_s=0.02,
    requests_per_minute=6000,
    backoff_base_s=0.02,
    backoff_max_s=0.2,
    auth_retry_s=300,
    connect_timeout_s=2,
    read_timeout_s=5,
)


def fixes(n: int, start: int = 0) -> list[Fix]:
    return [
        Fix(T0 + timedelta(seconds=start + i), 45.0 + (start + i) * 1e-5, 9.0, speed=8.0, mode=3)
        for i in range(n)
    ]


def wire_t(f: Fix) -> str:
    return format_time(f.t)


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer(limit=1000, window_s=1.0) as s:
        yield s


@pytest.fixture
def buf(tmp_path: Path) -> Buffer:
    return Buffer(tmp_path / "buffer.sqlite", synchronous="normal")


def make(
    server: FakeServer,
    buf: Buffer,
    cfg: UploadSettings = FAST,
    token: str = "secret",
    token_file: Path | None = None,
    **kw: object,
) -> Uplink:
    srv = ServerSettings(url=server.url, token=None if token_file else token, token_file=token_file)
    return Uplink(srv, cfg, buf, **kw)  # type: ignore[arg-type]


@contextmanager
def running(up: Uplink) -> Iterator[Uplink]:
    stop = threading.Event()
    th = threading.Thread(target=up.run, args=(stop,), daemon=True)
    th.start()
    try:
        yield up
    finally:
        stop.set()
        th.join(10)
        assert not th.is_alive()


def test_uploads_newest_first_and_empties_buffer(server: FakeServer, buf: Buffer) -> None:
    fs = fixes(1200)
    buf.add_many(fs)
    server.max_batch = 500
    with running(make(server, buf)) as up:
        assert server.wait_for(lambda: len(server.fixes) == 1200)
    first = server.requests[0]
    assert first.fixes[0]["t"] == wire_t(fs[-1])  # live first
    assert len(first.fixes) == 500 and first.backlog == 700
    assert first.headers["content-encoding"] == "gzip"
    assert first.headers["authorization"] == "Bearer secret"
    assert Buffer(buf.path).count() == 0
    assert up.status.phase == "ok" and up.status.last_upload is not None
    assert set(server.statuses()) == {200}


def test_steady_state_stays_inside_the_rate_limit(tmp_path: Path, buf: Buffer) -> None:
    # 10 requests per 2 s window: the planner must space requests ~0.22 s apart.
    with FakeServer(limit=10, window_s=2.0, enforce_rate=True) as server:
        up = make(server, buf, UploadSettings(interval_s=0.01, safety_margin=0.1))
        with running(up):
            writer = Buffer(buf.path)
            for i in range(40):
                writer.add_many(fixes(1, start=i))
                server.wait_for(lambda: False, timeout=0.05)
            assert server.wait_for(lambda: len(server.fixes) == 40)
        assert 429 not in server.statuses()
        assert up.planner.limits.requests_per_minute == 300


def test_per_fix_rejections_drop_only_those(server: FakeServer, buf: Buffer) -> None:
    fs = fixes(10)
    server.reject_t = {wire_t(fs[3]): "t: too far in the future"}
    buf.add_many(fs)
    with running(make(server, buf)):
        assert server.wait_for(lambda: len(server.requests) >= 1)
        assert server.wait_for(lambda: Buffer(buf.path).count() == 0)
    assert set(server.fixes) == {wire_t(f) for f in fs} - {wire_t(fs[3])}


def test_401_stops_and_resumes_when_token_file_changes(
    tmp_path: Path, server: FakeServer, buf: Buffer
) -> None:
    token = tmp_path / "token"
    token.write_text("wrong\n")
    buf.add_many(fixes(5))
    up = make(server, buf, token_file=token)
    with running(up):
        assert server.wait_for(lambda: server.statuses() == [401])
        assert server.wait_for(lambda: up.status.phase == "auth_error")
        Buffer(buf.path).add_many(fixes(5, start=5))  # keeps buffering
        token.write_text("secret\n")
        assert server.wait_for(lambda: len(server.fixes) == 10)
    assert server.statuses().count(401) == 1  # no hammering while refused
    assert "401" in (Buffer(buf.path).get_meta("last_error") or "")


def test_missing_token_is_config_error(tmp_path: Path, server: FakeServer, buf: Buffer) -> None:
    buf.add_many(fixes(3))
    up = make(server, buf, token_file=tmp_path / "absent")
    with running(up):
        assert server.wait_for(lambda: up.status.phase == "config_error")
        (tmp_path / "absent").write_text("secret")
        assert server.wait_for(lambda: len(server.fixes) == 3)
    assert not [s for s in server.statuses() if s != 200]


def test_413_halves_the_batch(server: FakeServer, buf: Buffer) -> None:
    buf.add_many(fixes(300))
    server.max_batch = 70  # the real-server path: 413 with max_batch in the body
    up = make(server, buf, replace(FAST, max_batch=200))
    server.script.append(Reply(413, {"error": "too large", "max_batch": 1000}))
    with running(up):
        assert server.wait_for(lambda: len(server.fixes) == 300)
    sizes = [len(r.fixes) for r in server.requests]
    assert sizes[:3] == [200, 100, 70]  # halved, then the server's advertised limit
    assert all(s <= 70 for s in sizes[2:])


def test_422_retries_without_gzip_first(server: FakeServer, buf: Buffer) -> None:
    buf.add_many(fixes(20))
    server.script.append(Reply(422, {"error": "body unreadable"}))
    with running(make(server, buf)):
        assert server.wait_for(lambda: len(server.fixes) == 20)
    assert server.requests[0].headers.get("content-encoding") == "gzip"
    assert "content-encoding" not in server.requests[1].headers
    assert Buffer(buf.path).quarantined() == 0


def test_422_poison_fix_is_quarantined_not_lost(server: FakeServer, buf: Buffer) -> None:
    fs = fixes(40)
    buf.add_many(fs)
    server.unreadable_t = {wire_t(fs[17])}
    up = make(server, buf, replace(FAST, gzip=False))
    with running(up):
        assert server.wait_for(lambda: len(server.fixes) == 39)
        assert server.wait_for(lambda: Buffer(buf.path).quarantined() == 1)
    b = Buffer(buf.path)
    assert b.count() == 0
    assert b.db.execute("SELECT reason FROM quarantine").fetchone()[0].startswith("HTTP 422")


@pytest.mark.parametrize(
    "reply",
    [Reply(503, {"error": "maintenance"}), Reply(drop=True), Reply(500, {"error": "boom"})],
    ids=["503", "drop", "500"],
)
def test_transient_failures_are_retried(server: FakeServer, buf: Buffer, reply: Reply) -> None:
    buf.add_many(fixes(10))
    server.script.extend([reply, reply, reply])
    up = make(server, buf)
    with running(up):
        assert server.wait_for(lambda: len(server.fixes) == 10)
    assert len(server.requests) >= 4
    assert up.status.phase == "ok"


@pytest.mark.parametrize("as_date", [False, True], ids=["seconds", "http-date"])
def test_retry_after_is_honoured(server: FakeServer, buf: Buffer, as_date: bool) -> None:
    buf.add_many(fixes(5))
    when = datetime.now(UTC) + timedelta(seconds=2)
    after = format_datetime(when, usegmt=True) if as_date else "1"
    server.script.append(Reply(429, {"error": "slow down"}, {"Retry-After": after}))
    with running(make(server, buf)):
        assert server.wait_for(lambda: len(server.fixes) == 5)
    gap = server.requests[1].at - server.requests[0].at
    assert gap >= 0.9  # never earlier than the server asked (a lower bound, not a speed test)


def test_next_attempt_is_persisted_across_restarts(server: FakeServer, buf: Buffer) -> None:
    buf.add_many(fixes(5))
    server.default = Reply(503, {"error": "down"}, {"Retry-After": "120"})
    up = make(server, buf)
    with running(up):
        assert server.wait_for(lambda: len(server.requests) == 1)
        view = Buffer(buf.path)
        assert server.wait_for(lambda: view.deadline_delay(DEADLINE_KEY) > 100)
    # A restarted agent waits out the persisted deadline instead of sending at once.
    up2 = make(server, buf)
    with running(up2):
        assert server.wait_for(lambda: up2.status.next_attempt_in_s > 100)
    assert len(server.requests) == 1


def test_unreadable_200_keeps_the_fixes(buf: Buffer) -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            return httpx.Response(200, content=b"<html>proxy page</html>")
        return httpx.Response(200, json={"accepted": 3, "duplicates": 0, "rejected": []})

    buf.add_many(fixes(3))
    srv = ServerSettings(url="http://agent.test", token="secret")
    up = Uplink(srv, FAST, buf, transport=httpx.MockTransport(handler))
    with running(up):
        FakeServer().wait_for(lambda: Buffer(buf.path).count() == 0, timeout=10)
    assert len(calls) == 2


def test_planner_intervals() -> None:
    p = Planner(UploadSettings())
    assert p.interval() == pytest.approx(6.6)  # the seed's 10/min with a 10 % margin
    assert p.batch_size() == 500
    from agent.protocol import Limits

    p.observe(Limits(requests_per_minute=10, max_batch=200, remaining=0, reset_s=30))
    assert p.batch_size() == 200 and p.next_delay() == pytest.approx(30.5)
    p.observe(Limits(remaining=2, reset_s=30))
    assert p.next_delay() == pytest.approx(16.5)
    assert p.shrink(200, None) == 100 and p.batch_size() == 100
    for _ in range(10):
        p.success(100)
    assert p.batch_size() == 200


def test_new_token_skips_the_persisted_auth_wait(
    tmp_path: Path, server: FakeServer, buf: Buffer
) -> None:
    token = tmp_path / "token"
    token.write_text("wrong")
    buf.add_many(fixes(5))
    up = make(server, buf, token_file=token)
    with running(up):
        assert server.wait_for(lambda: up.status.phase == "auth_error")
    # Restarted: still refused, so the 300 s auth wait stands and the state shows it...
    up2 = make(server, buf, token_file=token)
    assert up2.status.phase == "auth_error"
    with running(up2):
        assert server.wait_for(lambda: up2.status.next_attempt_in_s > 100)
    assert server.statuses() == [401]
    # ...but a replaced token is tried at once after a restart.
    token.write_text("secret")
    with running(make(server, buf, token_file=token)):
        assert server.wait_for(lambda: len(server.fixes) == 5)
