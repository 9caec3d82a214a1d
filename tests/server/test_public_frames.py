"""Riders' frames carry exactly their documented keys, over WebSocket and SSE, for every type.

Reading one field of a frame lets a leak through (a ``device_id`` slipped
into a rider's ``state`` frame passed every other test): here each frame's
whole key set is compared with docs/live.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.server.live_client import PUBLIC_VEHICLE_KEYS, Frame, fix, live_ws, post_fixes
from tests.server.running import RunningServer
from tests.server.test_live_sse import sse

FRAME_KEYS = {
    "snapshot": {"type", "at", "filter", "vehicles"},
    "update": {"type", "at", "vehicles", "removed"},
    "state": {"type", "id", "state", "at"},
    "heartbeat": {"type", "at"},
    "error": {"type", "error"},
}
VEHICLE_KEYS = set(PUBLIC_VEHICLE_KEYS)


def _check(frame: Frame, seen: dict[str, Frame]) -> None:
    assert set(frame) == FRAME_KEYS[frame["type"]], frame
    for vehicle in frame.get("vehicles", []):
        assert set(vehicle) == VEHICLE_KEYS, vehicle
    seen.setdefault(frame["type"], frame)


def _collect(next_frame: Callable[[], Frame], wanted: set[str]) -> dict[str, Frame]:
    seen: dict[str, Frame] = {}
    for _ in range(200):
        _check(next_frame(), seen)
        if wanted <= set(seen):
            return seen
    raise AssertionError(f"saw only {sorted(seen)}")


def test_every_public_frame_has_exactly_its_keys(
    server_factory: Callable[..., RunningServer],
) -> None:
    server = server_factory(offline_after_s=2)
    _, token = server.add_device("bus-1", route="5")
    with (
        live_ws(server.url, "/ws/public", heartbeat=1) as ws,
        sse(server, "/v1/live/public/stream") as events,
    ):
        _check(ws.snapshot(), {})
        _check(events.next(), {})
        post_fixes(server.url, token, fix(45.0, 9.0, speed=3.0))
        ws.send({"type": "nonsense"})  # an error frame (WebSocket only)
        frames: dict[str, Any] = _collect(ws.recv, {"update", "state", "heartbeat", "error"})
        assert frames["update"]["vehicles"], "the update carried the vehicle"
        assert frames["state"]["state"] == "offline"
        _collect(events.next, {"update", "state", "heartbeat"})
