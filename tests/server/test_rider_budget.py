"""Riders who flood are slowed to their budget (messages) or turned away (reconnects).

One rider sends subscribe messages as fast as it can (what a hostile rider can
send); past PUBLIC_WS_MESSAGES the server reads them at the budget's pace, so
the flood waits in that rider's socket (D73). Meanwhile a well-behaved rider
keeps its stream and an agent's POST reaches it.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from server.live.budget import MessageBudget
from server.live.door import SLOW_DOWN_S
from server.settings import RateLimit
from tests.server.live_client import fix, live_ws, post_fixes
from tests.server.running import RunningServer

Factory = Callable[..., RunningServer]
BUDGET = 10


def test_a_flooding_rider_is_read_at_its_budget_and_the_others_keep_working(
    server_factory: Factory,
) -> None:
    server = server_factory(public_ws_messages=RateLimit(BUDGET, 60))
    _, token = server.add_device("bus-1", route="5")
    post_fixes(server.url, token, fix(45.47, 9.20, age_s=10))
    with live_ws(server.url, "/ws/public") as quiet, live_ws(server.url, "/ws/public") as flood:
        quiet.snapshot()
        flood.snapshot()
        # Within the budget a subscribe is answered as the protocol says.
        flood.send({"type": "subscribe", "routes": ["5"]})
        assert [v["label"] for v in flood.snapshot()["vehicles"]] == ["bus-1"]
        for _ in range(10 * BUDGET):
            flood.send({"type": "subscribe", "routes": ["5"]})
        # The flood is answered at the budget's pace (one more every 6 s here), not closed:
        # in 3 s at most the rest of the burst is.
        answered = 0
        deadline = time.monotonic() + 3.0
        while (left := deadline - time.monotonic()) > 0:
            try:
                frame = flood.recv(timeout=left)
            except TimeoutError:
                break
            answered += frame["type"] == "snapshot"
        assert 0 < answered <= BUDGET, answered

        # The other rider's stream and the agent's ingest are untouched.
        r = post_fixes(server.url, token, fix(45.48, 9.21))
        assert r.status_code == 200, r.text
        frame = quiet.wait_for(lambda f: f["type"] == "update")
        assert [(v["label"], v["lat"]) for v in frame["vehicles"]] == [("bus-1", 45.48)]
        quiet.send({"type": "ping"})
        assert quiet.wait_for(lambda f: f["type"] == "heartbeat")
        # The flooding rider still gets the fleet's updates while its messages wait.
        frame = flood.wait_for(lambda f: f["type"] == "update")
        assert [v["lat"] for v in frame["vehicles"]] == [45.48]


def test_a_budget_says_how_long_until_its_next_message() -> None:
    budget = MessageBudget(2, 1.0)
    assert budget.wait_s() == 0.0
    assert budget.take() and budget.take()
    assert 0.4 < budget.wait_s() <= 0.5


def test_the_budget_refills_over_its_period() -> None:
    budget = MessageBudget(3, 0.05)
    assert [budget.take() for _ in range(4)] == [True, True, True, False]
    time.sleep(0.06)
    assert budget.take()


def test_an_address_reconnecting_in_a_loop_is_turned_away_and_others_are_not(
    server_factory: Factory,
) -> None:
    server = server_factory(public_connects=RateLimit(3, 60))
    for _ in range(3):
        with live_ws(server.url, "/ws/public") as rider:
            rider.snapshot()
    started = time.monotonic()
    with live_ws(server.url, "/ws/public") as again, pytest.raises(ConnectionClosed) as closed:
        again.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1013
    assert "new public streams" in closed.value.rcvd.reason
    # Past its budget an address waits for its refusal, so a reconnect loop slows down.
    assert time.monotonic() - started >= SLOW_DOWN_S
    # SSE shares the budget: the same address gets the stream's close event (1013), not a stream.
    r = httpx.get(f"{server.url}/v1/live/public/stream", timeout=10)
    close = [json.loads(line[5:]) for line in r.text.splitlines() if line.startswith("data:")]
    assert close[-1]["type"] == "close" and close[-1]["code"] == 1013, r.text
    # Another address is not affected.
    port = int(server.url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.2", 0))
    uri = f"ws://127.0.0.1:{port}/ws/public"
    with connect(uri, sock=sock, open_timeout=10) as other:
        assert json.loads(other.recv(timeout=10))["type"] == "snapshot"
