"""A rider's WebSocket that floods messages is closed with 1008; other riders and agents are not.

One rider sends subscribe messages as fast as it can (what a hostile rider can
send); past PUBLIC_WS_MESSAGES its socket is closed with 1008 (policy
violation) and a reason naming the setting. Meanwhile a well-behaved rider
keeps its stream and an agent's POST reaches it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from websockets.exceptions import ConnectionClosed

from server.live.budget import MessageBudget
from server.settings import RateLimit
from tests.server.live_client import fix, live_ws, post_fixes
from tests.server.running import RunningServer

Factory = Callable[..., RunningServer]
BUDGET = 10


def test_a_flooding_rider_is_closed_and_the_others_keep_working(server_factory: Factory) -> None:
    server = server_factory(public_ws_messages=RateLimit(BUDGET, 60))
    _, token = server.add_device("bus-1", route="5")
    post_fixes(server.url, token, fix(45.47, 9.20, age_s=10))
    with live_ws(server.url, "/ws/public") as quiet, live_ws(server.url, "/ws/public") as flood:
        quiet.snapshot()
        flood.snapshot()
        # Within the budget a subscribe is answered as the protocol says.
        flood.send({"type": "subscribe", "routes": ["5"]})
        assert [v["label"] for v in flood.snapshot()["vehicles"]] == ["bus-1"]
        with pytest.raises(ConnectionClosed) as closed:
            for _ in range(10 * BUDGET):
                flood.send({"type": "subscribe", "routes": ["5"]})
            while True:
                flood.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008
        assert "PUBLIC_WS_MESSAGES" in closed.value.rcvd.reason

        # The other rider's stream and the agent's ingest are untouched.
        r = post_fixes(server.url, token, fix(45.48, 9.21))
        assert r.status_code == 200, r.text
        frame = quiet.wait_for(lambda f: f["type"] == "update")
        assert [(v["label"], v["lat"]) for v in frame["vehicles"]] == [("bus-1", 45.48)]
        quiet.send({"type": "ping"})
        assert quiet.wait_for(lambda f: f["type"] == "heartbeat")


def test_the_budget_refills_over_its_period() -> None:
    budget = MessageBudget(3, 0.05)
    assert [budget.take() for _ in range(4)] == [True, True, True, False]
    time.sleep(0.06)
    assert budget.take()
