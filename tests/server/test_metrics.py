"""/metrics over real HTTP: counters move with ingest, labels stay bounded."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from server.metrics import reject_label
from tests.server.running import RunningServer


def scrape(server: RunningServer) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    r = httpx.get(f"{server.url}/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def post(server: RunningServer, token: str, fixes: list[Any]) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/telemetry/location",
        json={"fixes": fixes},
        headers={"Authorization": f"Bearer {token}"},
    )


def test_ingest_counters_and_latency(server: RunningServer) -> None:
    _, token = server.add_device("bus-1")
    t = int(time.time()) - 60
    good = [{"t": t + i, "lat": 45.0 + i / 1e4, "lon": 9.0} for i in range(3)]
    bad = [
        {"t": t + 10, "lat": 91.0, "lon": 9.0},
        {"t": "yesterday", "lat": 45.0, "lon": 9.0},
        {"t": t + 11, "lat": 45.0, "lon": 9.0, "speed": "fast"},
        "not a fix",
    ]
    assert post(server, token, good + bad).json()["accepted"] == 3
    assert post(server, token, good).json()["duplicates"] == 3
    assert post(server, "bt_wrong", good).status_code == 401
    osmand = httpx.post(f"{server.url}/osmand", params={"id": token, "lat": "45.5", "lon": "9.5"})
    assert osmand.json()["accepted"] == 1
    osmand = httpx.post(f"{server.url}/osmand", params={"id": token, "lat": "x", "lon": "9.5"})
    assert osmand.json()["accepted"] == 0

    m = scrape(server)
    assert value(m, "bustracker_fixes_accepted_total", protocol="v1") == 3
    assert value(m, "bustracker_fixes_duplicate_total", protocol="v1") == 3
    assert value(m, "bustracker_fixes_accepted_total", protocol="osmand") == 1
    rejected = "bustracker_fixes_rejected_total"
    assert value(m, rejected, protocol="v1", field="lat") == 1
    assert value(m, rejected, protocol="v1", field="t") == 1
    assert value(m, rejected, protocol="v1", field="speed") == 1
    assert value(m, rejected, protocol="v1", field="fix") == 1
    assert value(m, rejected, protocol="osmand", field="lat") == 1
    # Reasons never become labels: only field names do.
    labels = {dict(k[1]).get("field") for k in m if k[0] == rejected}
    assert labels <= {"lat", "t", "speed", "fix"}

    latency = "bustracker_http_request_duration_seconds_count"
    route = "/v1/telemetry/location"
    assert value(m, latency, method="POST", route=route, status="200") == 2
    assert value(m, latency, method="POST", route=route, status="401") == 1
    assert value(m, latency, method="POST", route="/osmand", status="200") == 2


def test_latency_labels_use_the_route_template(server: RunningServer) -> None:
    headers = server.operator("viewer")
    for device_id in (1, 2, 3):
        httpx.get(f"{server.url}/v1/vehicles/{device_id}/track", headers=headers)
    m = scrape(server)
    routes = {dict(k[1]).get("route") for k in m if k[0].startswith("bustracker_http_request")}
    assert "/v1/vehicles/{device_id}/track" in routes
    assert not any(r and r.startswith("/v1/vehicles/1") for r in routes)


def test_each_app_has_its_own_registry(server_factory: Callable[..., RunningServer]) -> None:
    a, b = server_factory(), server_factory()
    _, token = a.add_device("bus-1")
    post(a, token, [{"t": int(time.time()) - 5, "lat": 45.0, "lon": 9.0}])
    assert value(scrape(a), "bustracker_fixes_accepted_total", protocol="v1") == 1
    assert value(scrape(b), "bustracker_fixes_accepted_total", protocol="v1") == 0


def test_pool_gauges(any_server: RunningServer) -> None:
    m = scrape(any_server)
    size = m.get(("bustracker_db_pool_size", frozenset()))
    if any_server.settings.store.database_url:
        assert size is not None and size >= 1
        assert 0 <= m[("bustracker_db_pool_idle", frozenset())] <= size
        assert m[("bustracker_db_pool_max", frozenset())] >= size
    else:
        assert size is None  # SQLite has one connection and no pool


def test_group_commit_counters(any_server: RunningServer) -> None:
    _, token = any_server.add_device("bus-1")
    post(any_server, token, [{"t": int(time.time()) - 5, "lat": 45.0, "lon": 9.0}])
    m = scrape(any_server)
    groups = m[("bustracker_db_insert_groups_total", frozenset())]
    batches = m[("bustracker_db_insert_grouped_batches_total", frozenset())]
    assert batches >= groups >= 1  # the batch went in through a group (of one, here)


def test_reject_label_is_bounded() -> None:
    assert reject_label("lat: 91 outside -90..90") == "lat"
    assert reject_label("lat/lon: 0,0 is a receiver's no-fix placeholder") == "lat/lon"
    assert reject_label("fix must be a JSON object") == "fix"
    assert reject_label("timestamp: not epoch seconds") == "timestamp"
    assert reject_label("x" * 1000 + ": anything") == "other"
    assert reject_label("") == "other"


def test_live_connections_and_history_reads(server: RunningServer) -> None:
    from tests.server.live_client import access_token, live_ws

    device, _ = server.add_device("bus-1")
    connections = "bustracker_live_connections"
    with (
        live_ws(server.url, "/ws/public") as rider,
        live_ws(server.url, token=access_token(server)) as operator,
    ):
        rider.snapshot()
        operator.snapshot()
        m = scrape(server)
        assert value(m, connections, audience="public", transport="ws") == 1
        assert value(m, connections, audience="operator", transport="ws") == 1
        assert value(m, connections, audience="public", transport="sse") == 0
    deadline = time.monotonic() + 10
    while value(scrape(server), connections, audience="public", transport="ws"):
        assert time.monotonic() < deadline, "a closed stream is still counted"
        time.sleep(0.05)

    reads = "bustracker_db_history_reads_total"
    assert value(scrape(server), reads, target="primary") == 0
    track = httpx.get(
        f"{server.url}/v1/vehicles/{device.id}/track", headers=server.operator("viewer")
    )
    assert track.status_code == 200
    m = scrape(server)
    assert value(m, reads, target="primary") == 1
    assert value(m, reads, target="replica") == 0
