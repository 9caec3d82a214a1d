"""Test helpers for the live streams: post fixes, and read frames with generous deadlines."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
from websockets.sync.client import ClientConnection, connect

from tests.server.running import RunningServer

WAIT_S = 20.0
Frame = dict[str, Any]

# What riders see of a bus, in the view's order (server/vehicle.py public_view): every
# public frame, snapshot and feed is held to exactly these keys, so an operator-only
# field (a device id) slipping into one fails the tests that check it.
PUBLIC_VEHICLE_KEYS = (
    *("id", "label", "route", "route_id", "trip_id"),
    *("lat", "lon", "heading", "speed", "t", "state"),
)


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def fix(lat: float, lon: float, age_s: float = 0.0, **extra: Any) -> dict[str, Any]:
    t = datetime.now(UTC) - timedelta(seconds=age_s)
    return {"t": iso(t), "lat": lat, "lon": lon, **extra}


def post_fixes(url: str, token: str, *fixes: dict[str, Any]) -> httpx.Response:
    r = httpx.post(
        f"{url}/v1/telemetry/location",
        json={"fixes": list(fixes)},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return r


def ws_url(base: str, path: str, **params: Any) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return base.replace("http://", "ws://") + path + (f"?{query}" if query else "")


class LiveWS:
    """A real WebSocket client that reads JSON frames, skipping what a test ignores."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.seen: list[Frame] = []

    def recv(self, timeout: float = WAIT_S) -> Frame:
        frame: Frame = json.loads(self.conn.recv(timeout=timeout))
        self.seen.append(frame)
        return frame

    def send(self, message: dict[str, Any]) -> None:
        self.conn.send(json.dumps(message))

    def wait_for(self, match: Callable[[Frame], bool], timeout: float = WAIT_S) -> Frame:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching frame within {timeout} s; saw {self.seen[-5:]}")
            frame = self.recv(timeout=left)
            if match(frame):
                return frame

    def snapshot(self) -> Frame:
        return self.wait_for(lambda f: f["type"] == "snapshot")


@contextmanager
def live_ws(
    base: str, path: str = "/ws", headers: dict[str, str] | None = None, **params: Any
) -> Iterator[LiveWS]:
    with connect(
        ws_url(base, path, **params), additional_headers=headers, open_timeout=WAIT_S
    ) as conn:
        yield LiveWS(conn)


def vehicles_of(frame: Frame, key: str = "device_id") -> dict[Any, Frame]:
    return {v[key]: v for v in frame.get("vehicles", [])}


def has_vehicle(key: str, value: Any, **fields: Any) -> Callable[[Frame], bool]:
    """A predicate: an update or snapshot that shows this vehicle with these field values."""

    def match(frame: Frame) -> bool:
        if frame["type"] not in ("update", "snapshot"):
            return False
        v = vehicles_of(frame, key).get(value)
        return v is not None and all(v.get(k) == want for k, want in fields.items())

    return match


def access_token(server: RunningServer, role: str = "viewer") -> str:
    return server.operator(role)["Authorization"].removeprefix("Bearer ")  # type: ignore[arg-type]
