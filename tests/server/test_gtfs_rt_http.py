"""The served GTFS-Realtime feed over real HTTP on both stores, with and without a static feed.

The protobuf is read with gtfs-realtime-bindings, as consumers read it. Rules
are MobilityData gtfs-realtime-validator's (RULES.md); each assertion names its rule.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import httpx
import pytest
from google.transit import gtfs_realtime_pb2 as rt

from server.gtfs.parse import parse_feed
from server.gtfs_rt.cache import WATERMARK
from tests.server.gtfs_feeds import operator_headers, small_zip
from tests.server.live_client import fix, post_fixes
from tests.server.running import RunningServer, server_per_store

FEED = "/gtfs-rt/vehicle-positions"


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgis", marks=pytest.mark.postgis)]
)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    yield from server_per_store(request, tmp_path_factory, "gtfs-rt")


def fetch(server: RunningServer) -> tuple[rt.FeedMessage, httpx.Response]:
    r = httpx.get(server.url + FEED)
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-protobuf"
    return rt.FeedMessage.FromString(r.content), r


def wait_for(server: RunningServer, ok: Callable[[rt.FeedMessage], bool]) -> rt.FeedMessage:
    deadline = time.monotonic() + 15
    while True:
        message, _ = fetch(server)
        if ok(message) or time.monotonic() > deadline:
            return message
        time.sleep(0.1)


def check_rules(message: rt.FeedMessage) -> None:
    """The rules every served message keeps, whatever it holds."""
    header = message.header
    assert header.gtfs_realtime_version == "2.0"  # E038
    assert header.HasField("timestamp") and header.HasField("incrementality")  # E048, E049
    assert header.incrementality == rt.FeedHeader.FULL_DATASET
    now = time.time()
    assert now - 65 < header.timestamp <= now + 60  # W008 (fresh), E050 (not in the future), E001
    ids = [e.vehicle.vehicle.id for e in message.entity]
    assert len(ids) == len(set(ids)) and all(ids)  # E052, W002
    for e in message.entity:
        assert not e.HasField("is_deleted")  # E039
        vp = e.vehicle
        assert vp.HasField("timestamp") and vp.timestamp <= header.timestamp  # W001, E012
        assert -90 <= vp.position.latitude <= 90 and -180 <= vp.position.longitude <= 180  # E026
        assert not vp.position.HasField("bearing") or 0 <= vp.position.bearing <= 360  # E027
        assert not vp.position.HasField("speed") or 0 <= vp.position.speed <= 26  # W004
        if vp.HasField("trip"):
            assert vp.trip.HasField("schedule_relationship")  # W009
            assert vp.trip.trip_id or vp.trip.route_id  # W006: a trip is identified


def test_the_feed_without_a_static_feed(server: RunningServer) -> None:
    device, token = server.add_device("bus-7", route="7")
    # Ingest takes up to 150 m/s; 40 m/s is no bus (W004): the feed leaves the speed out.
    post_fixes(server.url, token, fix(45.4830, 9.2135, heading=350, speed=40))
    message = wait_for(server, lambda m: len(m.entity) == 1)
    check_rules(message)
    [entity] = message.entity
    # Stable public ids: never the device id, its name or its token.
    assert entity.id == entity.vehicle.vehicle.id and entity.id.startswith("v")
    assert str(device.id) != entity.id and token not in entity.id and "bus-7" not in entity.id
    assert entity.vehicle.vehicle.label == "bus-7"
    assert entity.vehicle.trip.route_id == "7" and not entity.vehicle.trip.trip_id
    assert entity.vehicle.position.bearing == 350 and not entity.vehicle.position.HasField("speed")
    as_json = httpx.get(server.url + FEED, params={"format": "json"}).json()
    assert as_json["header"]["incrementality"] == "FULL_DATASET"
    assert [e["id"] for e in as_json["entity"]] == [entity.id]


def test_caching_headers_and_304(server: RunningServer) -> None:
    message, r = fetch(server)
    assert r.headers["cache-control"] == "public, max-age=5"  # GTFS_RT_CACHE
    modified = r.headers["last-modified"]
    stamp = datetime.strptime(modified, "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=UTC)
    assert int(stamp.timestamp()) == message.header.timestamp
    again = httpx.get(server.url + FEED, headers={"If-Modified-Since": modified})
    assert again.status_code == 304 and again.content == b""
    assert httpx.get(server.url + FEED, params={"format": "xml"}).status_code == 422


def test_with_a_static_feed_routes_are_checked_and_problems_listed(server: RunningServer) -> None:
    feed = parse_feed(io.BytesIO(small_zip()))
    server._with_store(lambda s: s.replace_feed(feed, "small"))
    _, token = server.add_device("bus-r1", route="R1")
    previous = fetch(server)[0].header.timestamp
    post_fixes(server.url, token, fix(45.4830, 9.2135))
    message = wait_for(server, lambda m: any(e.vehicle.trip.route_id == "R1" for e in m.entity))
    check_rules(message)
    assert message.header.timestamp > previous  # E018, and E017: new content, new header
    by_label = {e.vehicle.vehicle.label: e.vehicle for e in message.entity}
    assert by_label["bus-r1"].trip.route_id == "R1"
    # Route "7" is not in the static feed now: published without it (E004), and reported.
    assert not by_label["bus-7"].HasField("trip")
    problems = httpx.get(f"{server.url}/v1/gtfs-rt/problems",
                         headers=operator_headers(server)).json()["problems"]  # fmt: skip
    assert {(p["label"], p["kind"], p["route_id"]) for p in problems} == {
        ("bus-7", "unknown_route", "7")
    }


def test_the_header_never_falls_below_what_any_replica_published(server: RunningServer) -> None:
    # E018 across replicas: another replica published a header ahead of this one's clock.
    ahead = int(time.time()) + 30
    server._with_store(lambda s: s.raise_watermark(WATERMARK, ahead))
    _, token = server.add_device("bus-late", route="R1")
    post_fixes(server.url, token, fix(45.4831, 9.2136))
    message = wait_for(server, lambda m: len(m.entity) == 3)
    assert message.header.timestamp >= ahead
