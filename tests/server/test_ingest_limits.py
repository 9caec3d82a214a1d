"""The edges of ingest's limits: exactly MAX_BATCH fixes is fine, a 429 never says "retry now"."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from server.settings import RateLimit
from tests.server.live_client import fix
from tests.server.running import RunningServer


def test_exactly_max_batch_fixes_is_accepted_one_more_is_413(
    server_factory: Callable[..., RunningServer],
) -> None:
    server = server_factory(max_batch=5)
    _, token = server.add_device("bus-1")
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{server.url}/v1/telemetry/location"
    batch = [fix(45.0 + i * 1e-3, 9.0, age_s=60 - i) for i in range(6)]
    r = httpx.post(url, json={"fixes": batch[:5]}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 5
    r = httpx.post(url, json={"fixes": batch}, headers=headers)
    assert r.status_code == 413 and r.json()["max_batch"] == 5
    # One bad fix sends the body down the per-fix path, whose count must agree.
    mixed = [*batch[:4], {**batch[5], "lat": 91.0}]
    r = httpx.post(url, json={"fixes": mixed}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 0 and len(r.json()["rejected"]) == 1
    # OsmAnd's JSON batches hold to the same MAX_BATCH.
    now = time.time()
    locations = [
        {"timestamp": now - 30 + i, "coords": {"latitude": 45.0, "longitude": 9.0 + i * 1e-3}}
        for i in range(6)
    ]
    osmand = f"{server.url}/osmand"
    r = httpx.post(osmand, json={"device_id": token, "location": locations[:5]})
    assert r.status_code == 200, r.text
    r = httpx.post(osmand, json={"device_id": token, "location": locations})
    assert r.status_code == 413


def test_a_429_always_asks_for_at_least_a_second(
    server_factory: Callable[..., RunningServer],
) -> None:
    # An OsmAnd batch costs one per fix: a batch larger than the whole budget is
    # refused with an empty window, where the seconds until a slot frees are 0.
    server = server_factory(rate_limit_osmand=RateLimit(2, 60))
    _, token = server.add_device("phone-1")
    now = time.time()
    locations = [
        {"timestamp": now - 10 + i, "coords": {"latitude": 45.0, "longitude": 9.0}}
        for i in range(3)
    ]
    r = httpx.post(f"{server.url}/osmand", json={"device_id": token, "location": locations})
    assert r.status_code == 429, r.text
    assert int(r.headers["Retry-After"]) >= 1
