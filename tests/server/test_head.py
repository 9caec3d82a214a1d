"""HEAD over real HTTP: what ``curl -I`` and uptime checkers see is what GET would send."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.server.running import RunningServer
from tests.server.test_metrics import scrape, value

# What a HEAD must carry over from GET (RFC 9110 9.3.2); the date and request id differ.
SAME = ("content-type", "content-length", "etag", "cache-control", "content-security-policy")


PAGES = ["/health", "/", "/console/", "/v1/live/public", "/gtfs-rt/vehicle-positions"]


@pytest.mark.parametrize("path", PAGES)
def test_a_head_has_the_headers_of_a_get_and_no_body(server: RunningServer, path: str) -> None:
    got = httpx.get(server.url + path)
    head = httpx.head(server.url + path)
    assert (head.status_code, head.content) == (got.status_code, b"")
    assert {k: head.headers.get(k) for k in SAME} == {k: got.headers.get(k) for k in SAME}
    assert got.status_code == 200 and int(head.headers["content-length"]) > 0


def test_a_head_is_refused_where_a_get_would_be(server: RunningServer) -> None:
    # No token: the same 401 as GET, and a POST-only route has no HEAD either.
    assert httpx.head(f"{server.url}/v1/fleet/live").status_code == 401
    assert httpx.head(f"{server.url}/v1/telemetry/location").status_code == 405
    assert httpx.head(f"{server.url}/no-such-page").status_code == 404
    etag = httpx.get(f"{server.url}/v1/live/public").headers["etag"]
    again = httpx.head(f"{server.url}/v1/live/public", headers={"If-None-Match": etag})
    assert again.status_code == 304


def test_a_head_on_a_live_stream_ends_and_holds_no_stream(server: RunningServer) -> None:
    # One kept-alive connection, as a monitor holds it: the stream must end by itself,
    # not when the client goes, or the connection's next request waits behind it.
    with httpx.Client(base_url=server.url, timeout=10) as client:
        head = client.head("/v1/live/public/stream")
        assert head.status_code == 200
        assert head.headers["content-type"].startswith("text/event-stream")
        connections = "bustracker_live_connections"
        deadline = time.monotonic() + 10
        while value(scrape(server), connections, audience="public", transport="sse"):
            assert time.monotonic() < deadline, "a HEAD left its stream open"
            time.sleep(0.05)
        assert client.get("/health").status_code == 200
