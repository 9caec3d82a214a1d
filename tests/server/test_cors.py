"""CORS_ORIGINS over real HTTP: the listed origins may call the API from a browser, no other."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.server.running import RunningServer

CONSOLE = "https://console.example"
EVIL = "https://evil.example"


def preflight(server: RunningServer, origin: str) -> httpx.Response:
    return httpx.options(
        f"{server.url}/v1/fleet/live",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )


def test_only_the_listed_origins_are_allowed(
    server_factory: Callable[..., RunningServer],
) -> None:
    server = server_factory(cors_origins=(CONSOLE,))
    ok = preflight(server, CONSOLE)
    assert ok.status_code in (200, 204)
    assert ok.headers["access-control-allow-origin"] == CONSOLE
    assert "authorization" in ok.headers["access-control-allow-headers"].lower()
    # A browser refuses to send the real request when the preflight names no origin.
    refused = preflight(server, EVIL)
    assert "access-control-allow-origin" not in refused.headers
    r = httpx.get(f"{server.url}/health", headers={"Origin": CONSOLE})
    assert r.headers["access-control-allow-origin"] == CONSOLE
    r = httpx.get(f"{server.url}/health", headers={"Origin": EVIL})
    assert "access-control-allow-origin" not in r.headers

    # Unset: no origin is allowed at all (same-origin pages only).
    closed = server_factory()
    assert "access-control-allow-origin" not in preflight(closed, CONSOLE).headers
    r = httpx.get(f"{closed.url}/health", headers={"Origin": CONSOLE})
    assert "access-control-allow-origin" not in r.headers
