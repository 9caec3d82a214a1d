"""The database goes away under a running server: 503 with Retry-After, never a 500.

Two real ways of losing PostgreSQL are played out:

- the network to it is cut (a loopback TCP relay between server and database is
  shut, like a database host that reboots): connections die and new ones are
  refused;
- the database refuses sessions (``ALLOW_CONNECTIONS false`` after terminating
  its backends), like a database being failed over or restored.

Then it comes back, and ingest must work again without a restart.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.server.relay import relayed
from tests.server.running import RunningServer
from tests.server.stored import count_fixes
from tests.services import PgCluster


@contextmanager
def sessions_refused(cluster: PgCluster, url: str) -> Iterator[None]:
    name = urlsplit(url).path.lstrip("/")
    cluster.execute(
        f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false',
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        f" WHERE datname = '{name}' AND pid <> pg_backend_pid()",
    )
    try:
        yield
    finally:
        cluster.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


def fix(offset: int = 0) -> dict[str, Any]:
    return {"t": int(time.time()) - 60 + offset, "lat": 45.0, "lon": 9.0}


def check_outage(
    server: RunningServer, token: str, device_id: int, admin: dict[str, str], admitted: bool
) -> None:
    """Everything that needs the store answers 503 + Retry-After while it is away.

    ``admitted``: the device's token is in the server's cache, so ingest gets as
    far as storing, and its 503 carries the rate-limit headers a 200 would.
    """
    auth = {"Authorization": f"Bearer {token}"}
    url = f"{server.url}/v1/telemetry/location"
    # Several requests: the first meets dead pooled connections, later ones meet
    # refused new connections. Each must be a clean 503.
    for i in range(1, 4):
        r = httpx.post(url, json={"fixes": [fix(i)]}, headers=auth, timeout=30)
        assert r.status_code == 503, r.text
        assert r.json()["error"] == "store unavailable"
        assert int(r.headers["Retry-After"]) >= 1
        if admitted:
            assert r.headers["X-Max-Batch"] == str(server.settings.limits.max_batch)
            assert "RateLimit-Remaining" in r.headers
    osmand = httpx.post(
        f"{server.url}/osmand", params={"id": token, "lat": "45", "lon": "9"}, timeout=30
    )
    assert osmand.status_code == 503 and "Retry-After" in osmand.headers
    assert ("RateLimit-Remaining" in osmand.headers) == admitted
    for path in (
        "/v1/fleet/live",
        "/v1/devices",
        f"/v1/vehicles/{device_id}/track",
        f"/v1/devices/{device_id}/events",
        "/v1/fleet/nearby?lat=45&lon=9",
    ):
        r = httpx.get(f"{server.url}{path}", headers=admin, timeout=30)
        assert r.status_code == 503, (path, r.text)
        assert r.json() == {"error": "store unavailable"} and "Retry-After" in r.headers
    r = httpx.patch(
        f"{server.url}/v1/devices/{device_id}", json={"in_service": False}, headers=admin
    )
    assert r.status_code == 503, r.text
    r = httpx.post(
        f"{server.url}/v1/auth/login", json={"username": "someone", "password": "x"}, timeout=30
    )
    assert r.status_code == 503 and "Retry-After" in r.headers
    health = httpx.get(f"{server.url}/health", timeout=30)
    assert health.status_code == 503
    assert health.json()["database"].startswith("unavailable")


def check_recovery(server: RunningServer, token: str) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    url = f"{server.url}/v1/telemetry/location"
    r = httpx.post(url, json={"fixes": [fix(10)]}, headers=auth, timeout=30)
    assert r.status_code == 200, r.text
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_network_to_the_database_cut(
    server_factory: Callable[..., RunningServer], postgis_url: str
) -> None:
    with relayed(postgis_url) as (relay, url):
        # A token cache that outlasts the test: the device stays admitted during the cut.
        server = server_factory(url, device_cache_s=3600)
        device, token = server.add_device("bus-1")
        auth = {"Authorization": f"Bearer {token}"}
        r = httpx.post(f"{server.url}/v1/telemetry/location", json={"fixes": [fix()]}, headers=auth)
        assert r.status_code == 200
        admin = server.operator("admin")
        relay.cut()
        check_outage(server, token, device.id, admin, admitted=True)
        relay.restore()
        check_recovery(server, token)
        # Nothing sent during the outage was stored; both sides of it were.
        assert server._with_store(lambda s: count_fixes(s, device.id)) == 2


def test_database_refusing_sessions(
    server_factory: Callable[..., RunningServer], postgis_url: str, pg_cluster: PgCluster
) -> None:
    server = server_factory(postgis_url)
    device, token = server.add_device("bus-1")
    admin = server.operator("admin")
    with sessions_refused(pg_cluster, postgis_url):
        check_outage(server, token, device.id, admin, admitted=False)
    check_recovery(server, token)
