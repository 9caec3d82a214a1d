"""``GET /v1/live/public``: what riders may see, as one document a cache can hold.

Stable ETag while nothing changes (so a proxy's revalidation is a 304), a new
one when a bus moves, a short max-age, and nothing a rider may not see.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx

from tests.server.live_client import PUBLIC_VEHICLE_KEYS, fix, post_fixes
from tests.server.running import RunningServer
from tests.service_procs import _missing
from tests.services import free_port


def dispatcher(server: RunningServer) -> dict[str, str]:
    """A signed-in operator\'s headers: an access token works only for a stored sign-in (D55)."""
    return server.operator("operator")


PUBLIC_FIELDS = set(PUBLIC_VEHICLE_KEYS)


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
        headers=dispatcher(server),
    )
    assert patched.status_code == 200, patched.text
    assert [v["label"] for v in httpx.get(url).json()["vehicles"]] == ["bus-7"]


NGINX = "/usr/sbin/nginx"
NGINX_CONF = """
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
{user}
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    proxy_cache_path {dir}/cache keys_zone=riders:1m;
    server {{
        listen 127.0.0.1:{port};
        location = /v1/live/public {{
            proxy_pass {upstream};
            proxy_cache riders;
            proxy_cache_revalidate on;
            add_header X-Cache $upstream_cache_status;
        }}
    }}
}}
"""


def test_nginx_answers_riders_from_its_cache_by_the_servers_own_headers(
    server: RunningServer, tmp_path: Path
) -> None:
    """No cache rule of our own: nginx caches because the answer's headers allow it."""
    if not Path(NGINX).exists():
        _missing("nginx", "nginx")
    _, token = server.add_device("bus-cached", route="5")
    post_fixes(server.url, token, fix(45.4651, 9.1909))
    port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            dir=tmp_path,
            port=port,
            upstream=server.url,
            # As root, workers would switch to nobody, who cannot write the cache here.
            user="user root;" if os.geteuid() == 0 else "",
        )
    )
    proc = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(tmp_path)])
    try:
        url = f"http://127.0.0.1:{port}/v1/live/public"
        deadline = time.monotonic() + 10
        while True:
            try:
                first = httpx.get(url)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
        assert first.status_code == 200 and first.headers["x-cache"] == "MISS"
        assert [v["label"] for v in first.json()["vehicles"]] == ["bus-cached"]
        with httpx.Client() as rider:
            answers = [rider.get(url) for _ in range(20)]
        # Every one of them from nginx's copy, not from the server.
        assert {a.headers["x-cache"] for a in answers} == {"HIT"}
        assert {a.content for a in answers} == {first.content}
        assert {a.headers["etag"] for a in answers} == {first.headers["etag"]}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
