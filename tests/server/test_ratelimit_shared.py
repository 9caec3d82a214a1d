"""Rate limits shared by two server processes through Redis, keyed by identity.

Two real servers on one PostGIS database and one Redis, as two replicas
behind nginx: a device or an operator cannot double its budget by having its
requests land on different replicas.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from server.settings import RateLimit
from tests.server.running import RunningServer


@pytest.fixture
def replicas(
    server_factory: Callable[..., RunningServer], postgis_url: str, redis_url: str
) -> tuple[RunningServer, RunningServer]:
    phones = RateLimit(6, 60)  # small, so a test can use it up
    return (
        server_factory(postgis_url, redis_url=redis_url, rate_limit_osmand=phones),
        server_factory(postgis_url, redis_url=redis_url, rate_limit_osmand=phones),
    )


def send(server: RunningServer, token: str, i: int) -> httpx.Response:
    fix = {"t": int(time.time()) - 100 + i, "lat": 45.0, "lon": 9.0}
    return httpx.post(
        f"{server.url}/v1/telemetry/location",
        json={"fixes": [fix]},
        headers={"Authorization": f"Bearer {token}"},
    )


def test_device_limit_is_shared_by_replicas(replicas: tuple[RunningServer, RunningServer]) -> None:
    a, b = replicas
    _, token = a.add_device("bus-1")
    _, other = a.add_device("bus-2")
    remaining = []
    for i in range(10):
        r = send((a, b)[i % 2], token, i)
        assert r.status_code == 200, r.text
        remaining.append(int(r.headers["RateLimit-Remaining"]))
    # One budget counted down across both processes, not two budgets of 10.
    assert remaining == list(range(9, -1, -1))
    for server in (a, b):
        r = send(server, token, 50)
        assert r.status_code == 429
        assert int(r.headers["Retry-After"]) >= 1
        assert r.json()["limits"]["requests_per_minute"] == 10
    # Another bus keeps its own budget, on either replica.
    assert send(b, other, 0).status_code == 200
    # OsmAnd reports have the device's other budget (per fix), shared by the replicas too.
    t = int(time.time()) - 100
    for i in range(6):
        params = {"id": token, "timestamp": str(t + 60 + i), "lat": "45", "lon": "9"}
        r = httpx.post(f"{(a, b)[i % 2].url}/osmand", params=params)
        assert r.status_code == 200, r.text
        assert r.headers["RateLimit-Remaining"] == str(5 - i)
    r = httpx.post(f"{b.url}/osmand", params={"id": token, "lat": "45", "lon": "9"})
    assert r.status_code == 429
    assert r.json()["limits"]["fixes_per_minute"] == 6


def test_api_limit_per_user_is_shared_by_replicas(
    replicas: tuple[RunningServer, RunningServer],
) -> None:
    a, b = replicas
    viewer = a.operator("viewer")  # the same JWT secret signs on both replicas
    admin = a.operator("admin")
    with httpx.Client() as http:  # one client: httpx.get() costs ~50 ms of TLS set-up
        for i in range(100):
            server = (a, b)[i % 2]
            r = http.get(f"{server.url}/v1/fleet/live", headers=viewer)
            assert r.status_code == 200, (i, r.text)
    for server in (a, b):
        r = httpx.get(f"{server.url}/v1/fleet/live", headers=viewer)
        assert r.status_code == 429
        assert r.json()["error"] == "rate limit exceeded"
        assert int(r.headers["Retry-After"]) >= 1
        assert r.headers["RateLimit-Policy"] == "100;w=60"
    # Keyed by the user, not by the address all test requests come from.
    assert httpx.get(f"{b.url}/v1/fleet/live", headers=admin).status_code == 200
