"""Security headers on every answer, a CSP pages can live within, HSTS behind TLS, /schema off."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.server.running import RunningServer


def test_security_headers_csp_and_hsts(server: RunningServer) -> None:
    host = server.url.removeprefix("http://")
    for path in ("/", "/health", "/no-such-page"):
        r = httpx.get(f"{server.url}{path}")
        assert r.headers["X-Content-Type-Options"] == "nosniff", path
        assert r.headers["Referrer-Policy"] == "strict-origin-when-cross-origin", path
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self';" in csp and "unsafe-inline'; img" in csp, csp
        assert f"connect-src 'self' ws://{host} wss://{host};" in csp
        assert "img-src 'self' data: https:;" in csp and "frame-ancestors 'none'" in csp
        assert "Strict-Transport-Security" not in r.headers
        assert r.headers["X-Request-ID"]
    # Through nginx with TLS (X-Forwarded-Proto from a trusted proxy: loopback).
    r = httpx.get(f"{server.url}/health", headers={"X-Forwarded-Proto": "https"})
    assert r.headers["Strict-Transport-Security"] == "max-age=31536000"
    # The API viewers load a CDN's scripts: no CSP there, the other headers still.
    r = httpx.get(f"{server.url}/schema/openapi.json")
    assert r.status_code == 200 and "Content-Security-Policy" not in r.headers
    assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_api_docs_can_be_turned_off(server_factory: Callable[..., RunningServer]) -> None:
    server = server_factory(api_docs=False)
    for path in ("/schema", "/schema/openapi.json", "/schema/swagger"):
        assert httpx.get(f"{server.url}{path}").status_code == 404, path
    assert httpx.get(f"{server.url}/health").status_code == 200
