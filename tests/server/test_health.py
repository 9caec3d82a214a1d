"""/health over real HTTP: 200 when the database (and Redis, if configured) answer, else 503."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from tests.server.relay import relayed
from tests.server.running import RunningServer


def test_healthy_embedded_server(server: RunningServer) -> None:
    r = httpx.get(f"{server.url}/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert "redis" not in body  # not configured, so not checked


def test_healthy_with_redis(server_factory: Callable[..., RunningServer], redis_url: str) -> None:
    server = server_factory(redis_url=redis_url)
    r = httpx.get(f"{server.url}/health")
    assert r.status_code == 200 and r.json()["redis"] == "ok"


def test_redis_down_is_503_but_ingest_goes_on(
    server_factory: Callable[..., RunningServer], redis_url: str
) -> None:
    with relayed(redis_url) as (relay, url):
        server = server_factory(redis_url=url)
        _, token = server.add_device("bus-1")
        assert httpx.get(f"{server.url}/health").json()["redis"] == "ok"
        relay.cut()
        r = httpx.get(f"{server.url}/health", timeout=30)
        assert r.status_code == 503
        body = r.json()
        assert body["status"] == "degraded"
        assert body["redis"] == "unavailable" and body["database"] == "ok"
        # Rate limiting fails open (docs/decisions.md D5): fixes are still taken.
        r = httpx.post(
            f"{server.url}/v1/telemetry/location",
            json={"fixes": [{"t": int(time.time()) - 5, "lat": 45.0, "lon": 9.0}]},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        relay.restore()
        assert httpx.get(f"{server.url}/health", timeout=30).status_code == 200


def test_database_down_is_503_then_recovers(
    server_factory: Callable[..., RunningServer], postgis_url: str
) -> None:
    with relayed(postgis_url) as (relay, url):
        server = server_factory(url)
        assert httpx.get(f"{server.url}/health").json()["database"] == "ok"
        relay.cut()
        r = httpx.get(f"{server.url}/health", timeout=30)
        assert r.status_code == 503
        assert r.headers["content-type"].startswith("application/json")
        assert r.json()["status"] == "degraded"
        assert r.json()["database"].startswith("unavailable")
        relay.restore()
        assert httpx.get(f"{server.url}/health", timeout=30).status_code == 200
