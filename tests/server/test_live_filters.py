"""The pure parts of the live streams: filters, the client index, coalescing, the hub."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from server.live.auth import RedactTokens, redact
from server.live.client import ClientSession
from server.live.coalesce import Outbox, frame_delay
from server.live.filters import (
    Filter,
    FilterError,
    parse_bbox,
    parse_heartbeat,
    parse_routes,
    parse_since,
    stream_options,
)
from server.live.hub import Hub
from server.live.index import MAX_CELLS, ClientIndex, cells_of
from server.live.views import (
    decode_message,
    encode_positions,
    position_from_wire,
    public_id,
)
from server.model import FixIn, LivePosition

NOW = datetime(2026, 11, 29, 8, 0, 0, tzinfo=UTC)


def pos(
    device_id: int = 1,
    lat: float = 45.0,
    lon: float = 9.0,
    age_s: float = 1.0,
    route: str | None = "5",
    in_service: bool = True,
    received_age_s: float | None = None,
) -> LivePosition:
    received = NOW - timedelta(seconds=age_s if received_age_s is None else received_age_s)
    return LivePosition(
        device_id=device_id,
        name=f"bus-{device_id}",
        fix=FixIn(t=NOW - timedelta(seconds=age_s), lat=lat, lon=lon, speed=5.0, heading=90.0),
        received_at=received,
        route=route,
        in_service=in_service,
    )


# -- parsing ---------------------------------------------------------------------------------


def test_bbox_parses_lists_and_strings_and_names_what_is_wrong() -> None:
    assert parse_bbox([9, 45, 10, 46]) == (9.0, 45.0, 10.0, 46.0)
    assert parse_bbox("9,45,10.5,46") == (9.0, 45.0, 10.5, 46.0)
    assert parse_bbox(None) is None and parse_bbox("") is None
    for bad in ([1, 2, 3], [True, 0, 1, 1], "a,b,c,d", [0, 50, 1, 40], [0, 0, 200, 1], {"x": 1}):
        with pytest.raises(FilterError, match="bbox"):
            parse_bbox(bad)
    with pytest.raises(FilterError):
        parse_bbox([0, 0, float("nan"), 1])


def test_routes_and_since_and_heartbeat() -> None:
    assert parse_routes("5, 7") == frozenset({"5", "7"})
    assert parse_routes(["5"]) == frozenset({"5"})
    assert parse_routes([]) is None and parse_routes(None) is None
    for bad in ([5], [""], "x" * 65, ["r"] * 201):
        with pytest.raises(FilterError, match="routes"):
            parse_routes(bad)
    assert parse_since("2026-11-29T08:00:00Z") == NOW
    assert parse_since("2026-11-29T09:00:00+01:00") == NOW
    assert parse_since("2026-11-29T08:00:00") == NOW  # naive means UTC
    assert parse_since(str(NOW.timestamp())) == NOW
    assert parse_since(None) is None
    with pytest.raises(FilterError, match="since"):
        parse_since("yesterday")
    assert parse_heartbeat(None) == 15.0
    assert parse_heartbeat("2") == 2.0
    with pytest.raises(FilterError, match="heartbeat"):
        parse_heartbeat("0.1")
    opts = stream_options({"routes": "5"}, last_event_id="2026-11-29T08:00:00Z")
    assert (opts.filter.routes, opts.since) == (frozenset({"5"}), NOW)


def test_filter_matches_route_and_box_including_across_the_antimeridian() -> None:
    assert Filter().matches(0, 0, None)
    f = Filter(bbox=(9, 45, 10, 46), routes=frozenset({"5"}))
    assert f.matches(45.5, 9.5, "5")
    assert not f.matches(45.5, 9.5, "7")
    assert not f.matches(44.0, 9.5, "5")
    assert not Filter(routes=frozenset({"5"})).matches(45.5, 9.5, None)
    fiji = Filter(bbox=(177.0, -19.0, -179.0, -16.0))
    assert fiji.matches(-18.0, 178.4, None)
    assert fiji.matches(-18.0, -179.5, None)
    assert not fiji.matches(-18.0, 0.0, None)


# -- index -------------------------------------------------------------------------------------


def test_index_finds_clients_by_route_cell_or_everywhere_once_each() -> None:
    index: ClientIndex[str] = ClientIndex()
    index.add("route5", Filter(routes=frozenset({"5", "6"})))
    index.add("milan", Filter(bbox=(9.0, 45.3, 9.4, 45.6)))
    index.add("all", Filter())
    index.add("world", Filter(bbox=(-180, -90, 180, 90)))
    assert sorted(index.candidates(45.46, 9.19, "5")) == ["all", "milan", "route5", "world"]
    assert sorted(index.candidates(41.9, 12.5, "7")) == ["all", "world"]
    index.add("milan", Filter(routes=frozenset({"7"})))  # re-filing replaces
    assert sorted(index.candidates(41.9, 12.5, "7")) == ["all", "milan", "world"]
    for client in ("route5", "milan", "all", "world"):
        index.remove(client)
    assert list(index.candidates(45.46, 9.19, "5")) == []
    assert len(index) == 0
    assert cells_of((-180, -90, 180, 90)) is None
    fiji = Filter(bbox=(179.95, 0.0, -179.95, 0.05))  # across the antimeridian
    cells = cells_of(fiji.bbox)  # type: ignore[arg-type]
    assert cells is not None and len(cells) <= MAX_CELLS
    index.add("fiji", fiji)
    assert list(index.candidates(0.01, 179.97, None)) == ["fiji"]
    assert list(index.candidates(0.01, -179.97, None)) == ["fiji"]
    assert list(index.candidates(0.01, 0.0, None)) == []


# -- coalescing --------------------------------------------------------------------------------


def test_outbox_keeps_one_entry_per_vehicle_however_many_changes() -> None:
    box: Outbox[int] = Outbox()
    assert not box
    for _ in range(1000):
        box.touch(1)
    box.touch(2)
    box.state(1, "offline")
    box.state(1, "online")
    assert len(box) == 2
    assert box.superseded == 1000
    touched, states = box.take()
    assert touched == [1, 2] and states == {1: "online"}
    assert not box


def test_frame_delay_sends_the_first_change_at_once_and_throttles_the_rest() -> None:
    assert frame_delay(None, 100.0, 0.25) == 0.0
    assert frame_delay(99.0, 100.0, 0.25) == 0.0
    assert frame_delay(99.9, 100.0, 0.25) == pytest.approx(0.15)


# -- wire --------------------------------------------------------------------------------------


def test_positions_survive_the_bus_and_public_ids_are_opaque_and_stable() -> None:
    original = pos(lat=45.123456, lon=9.654321)
    message = decode_message(encode_positions([original], NOW, 120))
    [item] = message["positions"]
    assert item["in_service"] is True and item["state"] == "online"
    assert position_from_wire(item) == original
    vid = public_id(b"k" * 32, 42)
    assert vid == public_id(b"k" * 32, 42) != public_id(b"j" * 32, 42)
    assert "42" not in vid


# -- hub ---------------------------------------------------------------------------------------


def hub() -> Hub:
    return Hub(offline_after_s=120, public_key=b"k" * 32, frame_interval_s=0.25)


def client(h: Hub, public: bool = False, flt: Filter | None = None) -> ClientSession:
    c = ClientSession(h, public=public, flt=flt or Filter())
    assert h.register(c)
    return c


def frames_of(h: Hub, c: ClientSession) -> list[dict[str, Any]]:
    touched, states = c.outbox.take()
    return [json.loads(f) for f in h.change_frames(c, touched, states, NOW)]


def test_hub_tells_only_matching_clients_and_removes_what_leaves_the_view() -> None:
    h = hub()
    route5 = client(h, flt=Filter(routes=frozenset({"5"})))
    box = client(h, public=True, flt=Filter(bbox=(8.9, 44.9, 9.1, 45.1)))
    everyone = client(h)
    h.apply_position(pos(1, route="5"), NOW)
    h.apply_position(pos(2, lat=50.0, route="7"), NOW)
    assert [v["device_id"] for f in frames_of(h, route5) for v in f["vehicles"]] == [1]
    [frame] = frames_of(h, box)
    assert [v["label"] for v in frame["vehicles"]] == ["bus-1"]
    assert "device_id" not in frame["vehicles"][0]
    assert len(frames_of(h, everyone)[0]["vehicles"]) == 2

    # Bus 1 drives out of the box: the public client is told to drop it.
    h.apply_position(pos(1, lat=46.0, age_s=0.5), NOW)
    [frame] = frames_of(h, box)
    assert frame["vehicles"] == [] and frame["removed"] == [h.vehicles[1].public_id]

    frames_of(h, route5), frames_of(h, everyone)
    # An older fix changes nothing and tells no one.
    assert not h.apply_position(pos(1, lat=10.0, age_s=30), NOW)
    assert not route5.outbox and not everyone.outbox


def test_hub_hides_out_of_service_from_riders_but_not_operators() -> None:
    h = hub()
    rider = client(h, public=True)
    operator = client(h)
    h.apply_position(pos(1), NOW)
    frames_of(h, rider), frames_of(h, operator)
    assert h.apply_attrs(1, {"in_service": False}, NOW, NOW)
    [frame] = frames_of(h, rider)
    assert frame["removed"] == [h.vehicles[1].public_id]
    update, state = frames_of(h, operator)
    assert update["vehicles"][0]["in_service"] is False
    assert (state["type"], state["state"], state["device_id"]) == ("state", "out_of_service", 1)
    snap = json.loads(h.snapshot_frame(rider, NOW))
    assert snap["vehicles"] == []


def test_hub_flips_silent_vehicles_offline_once_and_online_on_the_next_fix() -> None:
    h = Hub(offline_after_s=60, public_key=b"k" * 32)
    operator = client(h)
    rider = client(h, public=True)
    h.apply_position(pos(1, age_s=30), NOW)
    frames_of(h, operator), frames_of(h, rider)
    assert h.check_states(NOW) == 0
    later = NOW + timedelta(seconds=31)
    assert h.check_states(later) == 1
    assert h.check_states(later + timedelta(seconds=5)) == 0
    [state] = frames_of(h, operator)
    assert (state["state"], state["device_id"]) == ("offline", 1)
    [state] = frames_of(h, rider)
    assert state == {"type": "state", "id": h.vehicles[1].public_id, "state": "offline",
                     "at": state["at"]}  # fmt: skip
    # When it went offline follows from received_at, whichever process computes it.
    assert h.vehicles[1].changed_at == NOW - timedelta(seconds=30) + timedelta(seconds=60)

    h.apply_position(pos(1, age_s=0, received_age_s=-32), later)
    update, state = frames_of(h, operator)
    assert update["vehicles"][0]["state"] == "online"
    assert state["state"] == "online"


def test_snapshot_since_lists_changes_and_removals_only() -> None:
    h = hub()
    h.apply_position(pos(1, received_age_s=600), NOW)
    h.apply_position(pos(2, received_age_s=1, in_service=False), NOW)
    h.apply_position(pos(3, received_age_s=1), NOW)
    rider = client(h, public=True)
    since = NOW - timedelta(seconds=60)
    snap = json.loads(h.snapshot_frame(rider, NOW, since))
    assert [v["label"] for v in snap["vehicles"]] == ["bus-3"]
    assert snap["removed"] == [h.vehicles[2].public_id]
    full = json.loads(h.snapshot_frame(rider, NOW))
    assert {v["label"] for v in full["vehicles"]} == {"bus-1", "bus-3"}
    assert "since" not in full


def test_resync_merges_newer_fixes_and_operator_changes() -> None:
    h = hub()
    h.apply_position(pos(1, age_s=10), NOW)
    stored = [pos(1, age_s=10, route="9"), pos(2, age_s=5)]
    assert h.resync(stored, NOW, read_at=NOW) == 2
    assert h.vehicles[1].pos.route == "9"
    assert set(h.vehicles) == {1, 2}


async def test_a_slow_reader_gets_the_newest_position_in_few_frames() -> None:
    h = Hub(offline_after_s=120, public_key=b"k" * 32, frame_interval_s=0.05)
    c = client(h)
    frames = c.frames()
    snapshot = json.loads(await anext(frames))
    assert snapshot["type"] == "snapshot"
    # A thousand moves of one bus while the reader is busy elsewhere...
    for i in range(1000):
        h.apply_position(pos(1, lat=45 + i / 10_000, age_s=100 - i / 100), NOW)
    update = json.loads(await asyncio.wait_for(anext(frames), 10))
    # ...come out as one frame with only the last of them.
    assert [v["lat"] for v in update["vehicles"]] == [45 + 999 / 10_000]
    assert c.outbox.superseded == 999
    c.close(1000, "done")
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(frames), 10)
    h.unregister(c)
    assert len(h.clients) == 0


def test_tokens_in_query_strings_are_kept_out_of_logs() -> None:
    record = logging.LogRecord(
        "uvicorn.error", logging.INFO, __file__, 1, '%s - "WebSocket %s" [accepted]',
        ("127.0.0.1:5", "/ws?bbox=1,2,3,4&token=eyJ.secret.sig"), None,
    )  # fmt: skip
    assert RedactTokens().filter(record)
    assert record.getMessage().endswith('"WebSocket /ws?bbox=1,2,3,4&token=[redacted]" [accepted]')
    assert redact("/v1/live/stream?token=abc") == "/v1/live/stream?token=[redacted]"
    assert redact("/ws?notatoken=1") == "/ws?notatoken=1"
    # A phone's device token in an OsmAnd report is a credential too.
    assert redact("/?id=bt_x&lat=45") == "/?id=[redacted]&lat=45"
    assert redact("/osmand?lat=45&deviceid=bt_x") == "/osmand?lat=45&deviceid=[redacted]"
    assert redact("/v1/x?device_id=7") == "/v1/x?device_id=7"
