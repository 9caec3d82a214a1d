"""``GET /v1/live/public``: what riders may see, as one document a cache can hold.

Stable ETag while nothing changes (so a proxy's revalidation is a 304), a new
one when a bus moves, a short max-age, and nothing a rider may not see.
"""

from __future__ import annotations

import httpx

from tests.server.live_client import fix, post_fixes
from tests.server.running import RunningServer

PUBLIC_FIELDS = {"id", "label", "route", "route_id", "lat", "lon", "heading", "speed", "t", "state"}


def test_the_public_snapshot_is_cacheable_and_shows_only_buses_in_service(
    server: RunningServer,
) -> None:
    url = server.url + "/v1/live/public"
    empty = httpx.get(url)
    assert empty.status_code == 200 and empty.json() == {"vehicles": []}
    _, token7 = server.add_device("bus-7", route="5")
    nine, token9 = server.add_device("bus-9", route="7")
    post_fixes(server.url, token7, fix(45.4651, 9.1909))
    post_fixes(server.url, token9, fix(45.4700, 9.2000))

    r = httpx.get(url)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.headers["cache-control"] == "public, max-age=5"
    vehicles = r.json()["vehicles"]
    assert sorted(v["label"] for v in vehicles) == ["bus-7", "bus-9"]
    assert all(set(v) == PUBLIC_FIELDS for v in vehicles)
    assert {v["label"]: v["route_id"] for v in vehicles} == {"bus-7": "5", "bus-9": "7"}
    # No device ids, no tokens: only the public ids the streams use.
    assert token7 not in r.text and all(v["id"].startswith("v") for v in vehicles)
    assert '"device_id"' not in r.text

    # Nothing changed: the same ETag, and a revalidation costs no body.
    again = httpx.get(url)
    assert again.headers["etag"] == r.headers["etag"] and again.content == r.content
    cached = httpx.get(url, headers={"If-None-Match": r.headers["etag"]})
    assert cached.status_code == 304 and cached.content == b""
    assert cached.headers["etag"] == r.headers["etag"]

    # A bus moves: a new document, a new ETag; the old one no longer matches.
    post_fixes(server.url, token7, fix(45.4660, 9.1920))
    moved = httpx.get(url, headers={"If-None-Match": r.headers["etag"]})
    assert moved.status_code == 200 and moved.headers["etag"] != r.headers["etag"]
    by_label = {v["label"]: v for v in moved.json()["vehicles"]}
    assert by_label["bus-7"]["lat"] == 45.466

    # Taken out of service: gone from what riders see.
    patched = httpx.patch(
        f"{server.url}/v1/devices/{nine.id}",
        json={"in_service": False},
        headers=server.operator("operator"),
    )
    assert patched.status_code == 200, patched.text
    assert [v["label"] for v in httpx.get(url).json()["vehicles"]] == ["bus-7"]
