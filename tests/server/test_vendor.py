"""``/vendor/leaflet/…``: Leaflet's files exactly as the xstatic-leaflet package ships them."""

from __future__ import annotations

import gzip
from pathlib import Path

import httpx
import xstatic.pkg.leaflet as leaflet

from tests.server.running import RunningServer


def test_leaflet_comes_from_the_package_gzipped_and_cached_a_day(server: RunningServer) -> None:
    base = Path(leaflet.BASE_DIR)
    with httpx.Client(base_url=server.url) as client:
        for name, kind in (("leaflet.js", "text/javascript"), ("leaflet.css", "text/css")):
            r = client.get(f"/vendor/leaflet/{name}", headers={"Accept-Encoding": "gzip"})
            assert r.status_code == 200 and r.headers["content-type"].startswith(kind)
            # httpx undoes the gzip: the bytes are the package's own.
            assert r.content == (base / name).read_bytes()
            assert r.headers["content-encoding"] == "gzip"
            assert r.headers["cache-control"] == "public, max-age=86400"
            with client.stream("GET", f"/vendor/leaflet/{name}") as stream:
                sent = b"".join(stream.iter_raw())
            assert gzip.decompress(sent) == r.content and len(sent) < len(r.content) / 3
            again = client.get(
                f"/vendor/leaflet/{name}", headers={"If-None-Match": r.headers["etag"]}
            )
            assert again.status_code == 304
        # Only the two files: nothing else of the package (or the disk) is reachable.
        for path in ("/vendor/leaflet/leaflet-src.js", "/vendor/leaflet/images", "/vendor/x.js"):
            r = client.get(path)
            assert r.status_code == 404 and "error" in r.json(), path
