"""The Transit part of the Store contract, on SQLite and PostGIS: feeds, routes, watermarks."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from server.gtfs.model import Route
from server.gtfs.parse import parse_feed
from server.store import Conflict, Store, open_store
from tests.server.gtfs_feeds import shared_zip, small_zip


@pytest.fixture(params=["sqlite", pytest.param("postgis", marks=pytest.mark.postgis)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    url = None if request.param == "sqlite" else request.getfixturevalue("postgis_url")
    opened = open_store(url, tmp_path / "data")
    await opened.open()
    yield opened
    await opened.close()


SMALL = parse_feed(io.BytesIO(small_zip()))


async def test_a_stored_feed_reads_back_as_imported(store: Store) -> None:
    assert await store.feed_info() is None and await store.load_feed() is None
    info = await store.replace_feed(SMALL, "v1")
    assert (info.version, info.routes, info.trips, info.stops) == ("v1", 2, 2, 4)
    loaded = await store.load_feed()
    assert loaded is not None
    assert loaded.timezone == "Europe/Rome"
    for name in ("routes", "stops", "trips", "stop_times", "calendars", "calendar_dates",
                 "shape_points"):  # fmt: skip
        assert sorted(getattr(loaded, name), key=repr) == sorted(getattr(SMALL, name), key=repr)
    assert await store.feed_info() == info
    # The GTFS-RT header's watermark (D50) only ever grows.
    assert await store.raise_watermark("gtfs_rt", 100) == 100
    assert await store.raise_watermark("gtfs_rt", 90) == 100
    assert await store.raise_watermark("gtfs_rt", 101) == 101
    assert await store.raise_watermark("other", 5) == 5


async def test_reimport_replaces_the_feed_and_keeps_operator_routes(store: Store) -> None:
    await store.replace_feed(SMALL, "v1")
    await store.add_route(Route("X9", "X9", "Shuttle", color="00AA00", source="operator"))
    good = parse_feed(io.BytesIO(shared_zip("good_feed")))
    await store.replace_feed(good, "v2")
    ids = [r.route_id for r in await store.list_routes()]
    assert ids == sorted(["AB", "BFC", "STBA", "CITY", "AAMV", "X9"])  # R1, R2 gone
    loaded = await store.load_feed()
    assert loaded is not None and {s.stop_id for s in loaded.stops} >= {"BULLFROG", "AMV"}
    assert not {"S1", "S2"} & {s.stop_id for s in loaded.stops}


async def test_a_failed_import_leaves_the_old_feed_whole(store: Store) -> None:
    await store.replace_feed(SMALL, "v1")
    # Two stop times with one key: the database refuses it half-way through the insert.
    broken = replace(SMALL, stop_times=(*SMALL.stop_times, SMALL.stop_times[0]))
    with pytest.raises(Exception):  # noqa: B017 - each store raises its driver's error
        await store.replace_feed(broken, "v2")
    info = await store.feed_info()
    assert info is not None and info.version == "v1"
    loaded = await store.load_feed()
    assert loaded is not None and len(loaded.stop_times) == len(SMALL.stop_times)
    assert [r.route_id for r in await store.list_routes()] == ["R1", "R2"]


async def test_operators_routes_are_added_changed_and_removed(store: Store) -> None:
    # A feed route takes over an operator route of its id: routes are one list.
    await store.add_route(Route("R1", "old", source="operator"))
    await store.replace_feed(SMALL, "v1")
    route = await store.get_route("R1")
    assert route is not None and (route.short_name, route.source) == ("1", "gtfs")
    made = await store.add_route(Route("N1", "N1", None, color="123456", source="operator"))
    assert made == Route("N1", "N1", None, 3, "123456", None, None, "operator")
    with pytest.raises(Conflict):
        await store.add_route(Route("R1", "dup", source="operator"))
    changed = await store.update_route("N1", {"long_name": "Night line", "color": "654321"})
    assert changed is not None and (changed.long_name, changed.color) == ("Night line", "654321")
    assert await store.get_route("N1") == changed
    # GTFS routes belong to the feed: neither changed nor removed here.
    assert await store.update_route("R1", {"short_name": "x"}) is None
    assert not await store.delete_route("R1")
    assert await store.delete_route("N1")
    assert await store.get_route("N1") is None
