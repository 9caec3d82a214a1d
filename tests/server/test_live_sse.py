"""/v1/live/stream and /v1/live/public/stream: the WebSocket frames as server-sent events."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.server.live_client import (
    WAIT_S,
    Frame,
    access_token,
    fix,
    has_vehicle,
    post_fixes,
    vehicles_of,
)
from tests.server.running import RunningServer


class SSE:
    """Reads ``text/event-stream`` from a real streaming HTTP response."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.iter_lines()
        self.last_id: str | None = None

    def next(self) -> Frame:
        data: list[str] = []
        for line in self._lines:
            if line.startswith("data: "):
                data.append(line.removeprefix("data: "))
            elif line.startswith("id: "):
                self.last_id = line.removeprefix("id: ")
            elif line == "" and data:
                frame: Frame = json.loads("\n".join(data))
                return frame
        raise AssertionError("stream ended")

    def wait_for(self, match: Callable[[Frame], bool], timeout: float = WAIT_S) -> Frame:
        # heartbeat=1 on every test stream keeps this loop turning while nothing changes.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            frame = self.next()
            if match(frame):
                return frame
        raise AssertionError(f"no matching event within {timeout} s")


@contextmanager
def sse(
    server: RunningServer, path: str, headers: dict[str, str] | None = None, **params: Any
) -> Iterator[SSE]:
    params.setdefault("heartbeat", 1)
    timeout = httpx.Timeout(WAIT_S)
    with (
        httpx.Client(timeout=timeout) as client,
        client.stream("GET", server.url + path, params=params, headers=headers) as r,
    ):
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        yield SSE(r)


def test_operator_stream_snapshot_then_updates(server: RunningServer) -> None:
    bus, token = server.add_device("bus-1", route="5")
    post_fixes(server.url, token, fix(45.0, 9.0, age_s=10))
    with sse(server, "/v1/live/stream", headers=server.operator("viewer")) as events:
        snap = events.wait_for(lambda f: f["type"] == "snapshot")
        assert vehicles_of(snap)[bus.id]["in_service"] is True
        assert events.last_id is not None and events.last_id.endswith("Z")
        post_fixes(server.url, token, fix(45.1, 9.1, age_s=5))
        events.wait_for(has_vehicle("device_id", bus.id, lat=45.1))
        assert events.wait_for(lambda f: f["type"] == "heartbeat")["at"]


def test_token_as_query_parameter_and_refusals(server: RunningServer) -> None:
    with sse(server, "/v1/live/stream", token=access_token(server)) as events:
        assert events.next()["type"] == "snapshot"
    r = httpx.get(f"{server.url}/v1/live/stream")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["error"] == "missing access token"
    r = httpx.get(f"{server.url}/v1/live/stream", params={"token": "nope"})
    assert (r.status_code, r.json()["error"]) == (401, "token invalid")
    r = httpx.get(f"{server.url}/v1/live/public/stream", params={"bbox": "1,2,3,x"})
    assert r.status_code == 400
    assert "bbox" in r.json()["error"]


def test_public_stream_filters_and_hides_ids(server: RunningServer) -> None:
    _, ta = server.add_device("a", route="5")
    b, tb = server.add_device("b", route="7")
    post_fixes(server.url, ta, fix(45.0, 9.0, age_s=10))
    post_fixes(server.url, tb, fix(46.0, 10.0, age_s=10))
    with sse(server, "/v1/live/public/stream", routes="7") as events:
        snap = events.wait_for(lambda f: f["type"] == "snapshot")
        [v] = snap["vehicles"]
        assert v["label"] == "b" and "device_id" not in v
        post_fixes(server.url, ta, fix(45.1, 9.1, age_s=5))
        post_fixes(server.url, tb, fix(46.1, 10.1, age_s=5))
        frame = events.wait_for(lambda f: f["type"] == "update")
        assert [v["label"] for v in frame["vehicles"]] == ["b"]
        r = httpx.patch(
            f"{server.url}/v1/devices/{b.id}",
            json={"in_service": False},
            headers=server.operator("operator"),
        )
        assert r.status_code == 200
        removed = events.wait_for(lambda f: f["type"] == "update" and f["removed"])
        assert removed["removed"] == [v["id"]]
    with sse(server, "/v1/live/public/stream", bbox="8.5,44.5,9.5,45.5") as events:
        assert [v["label"] for v in events.next()["vehicles"]] == ["a"]


def test_last_event_id_resumes_with_only_what_changed(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server runs in this process: drop the look-back grace so "before" is clear-cut.
    monkeypatch.setattr("server.live.hub.SINCE_GRACE", timedelta(0))
    _, ta = server.add_device("a")
    _, tb = server.add_device("b")
    post_fixes(server.url, ta, fix(45.0, 9.0, age_s=60))
    post_fixes(server.url, tb, fix(45.0, 9.0, age_s=60))
    with sse(server, "/v1/live/public/stream") as events:
        assert len(events.next()["vehicles"]) == 2
        resume_from = events.last_id
    assert resume_from is not None
    time.sleep(0.01)
    post_fixes(server.url, tb, fix(45.2, 9.2, age_s=30))
    # As an EventSource reconnecting by itself would: Last-Event-ID, no since.
    with sse(server, "/v1/live/public/stream", headers={"Last-Event-ID": resume_from}) as events:
        snap = events.next()
        assert snap["since"] == resume_from
        assert [(v["label"], v["lat"]) for v in snap["vehicles"]] == [("b", 45.2)]
