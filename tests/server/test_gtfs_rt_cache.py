"""The feed is encoded once per change and refreshed on time (validator E017, W007, E028)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from google.transit import gtfs_realtime_pb2 as rt

from server.gtfs.parse import parse_feed
from server.gtfs_rt.cache import REFRESH_S, FeedCache, feed_vehicles
from server.live.hub import Hub
from server.model import FixIn, LivePosition
from server.store import Store, open_store
from server.transit import TransitCache
from tests.server.gtfs_feeds import small_zip


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = open_store(None, tmp_path / "data")
    await opened.open()
    yield opened
    await opened.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def position(device_id: int, lat: float = 45.4830, lon: float = 9.2135) -> LivePosition:
    t = datetime.now(UTC) - timedelta(seconds=1)
    return LivePosition(device_id, f"bus-{device_id}", FixIn(t, lat, lon), t, route="R1")


async def test_encoded_once_per_change_and_refreshed_on_time(store: Store) -> None:
    hub = Hub(offline_after_s=120, public_key=b"k" * 32)
    clock, transit = Clock(), TransitCache()
    cache = FeedCache(clock=clock)
    hub.apply_position(position(1), datetime.now(UTC))
    first = await cache.current(hub, transit, store)
    # Requests without a change get the very same bytes: nothing is encoded per request.
    clock.now += 0.5
    assert (await cache.current(hub, transit, store)) is first
    hub.apply_position(position(2), datetime.now(UTC))
    clock.now += 0.2  # a change within a second waits for the next one
    assert (await cache.current(hub, transit, store)) is first
    clock.now += 1.0
    second = await cache.current(hub, transit, store)
    assert second is not first and second.entities == 2
    # E017: content changed, so the header changed too (even within one wall-clock second).
    assert second.header_s > first.header_s
    # W007: without changes the feed is still refreshed within 35 s (every REFRESH_S).
    clock.now += REFRESH_S + 0.1
    third = await cache.current(hub, transit, store)
    assert third is not second and third.header_s >= second.header_s
    assert REFRESH_S <= 30


async def test_outside_the_agency_area_is_left_out_and_reported(store: Store) -> None:
    # E028: with a static feed, a vehicle far outside its stops and shapes (1609 m buffer).
    await store.replace_feed(parse_feed(io.BytesIO(small_zip())), "small")
    hub = Hub(offline_after_s=120, public_key=b"k" * 32)
    hub.apply_position(position(1), datetime.now(UTC))
    hub.apply_position(position(2, lat=45.0, lon=9.2), datetime.now(UTC))  # 50 km south
    encoded = await FeedCache(clock=Clock()).current(hub, TransitCache(), store)
    message = rt.FeedMessage.FromString(encoded.protobuf)
    assert [e.vehicle.vehicle.label for e in message.entity] == ["bus-1"]
    assert [(p.label, p.kind) for p in encoded.problems] == [("bus-2", "outside_area")]


def test_a_standing_bus_keeps_the_bearing_it_drove_with() -> None:
    hub = Hub(offline_after_s=120, public_key=b"k" * 32)
    now = datetime.now(UTC)

    def report(s: float, speed: float, heading: float | None) -> float | None:
        t = now - timedelta(seconds=s)
        fix = FixIn(t, 45.4830, 9.2135, speed=speed, heading=heading)
        hub.apply_position(LivePosition(1, "bus-1", fix, t, route="R1"), now)
        (vehicle,) = feed_vehicles(hub)
        return vehicle.bearing

    assert report(70, 8.0, 215.0) == 215.0
    # At a light, its receiver's heading wanders; the feed keeps the way it was going.
    assert report(50, 0.2, 37.0) == 215.0
    assert report(20, 0.0, None) == 215.0
    # More than a minute after it last moved it may leave either way: the fix's own.
    assert report(5, 0.1, 40.0) == 40.0
