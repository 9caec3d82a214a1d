"""The rider app's files (docs/rider.md): ``/`` (the page), ``/rider/…``, ``/sw.js``, the manifest.

Plain files in this folder, read once, with two things filled in by the server:
the page gets the map tile settings (MAP_TILE_URL, MAP_TILE_ATTRIBUTION), and
the service worker gets the list of files to keep offline and a version (a hash
of all of them), so a changed app installs a new worker that drops the old cache.
"""

from __future__ import annotations

import functools
import hashlib
import html
import json
from pathlib import Path
from typing import Any

from litestar import Request, Response, get
from litestar.params import FromPath

from server.access import access
from server.http import ApiError, services
from server.rider.assets import Asset, asset_response
from server.rider.icons import SIZES, icon_png

HERE = Path(__file__).resolve().parent
JS = "text/javascript"
# Served under /rider/ as they are in this folder.
FILES: dict[str, str] = {
    "app.js": JS,
    "colours.js": JS,
    "fleet.js": JS,
    "i18n.js": JS,
    "live.js": JS,
    "map.js": JS,
    "offline.js": JS,
    "stops.js": JS,
    "style.css": "text/css",
    "i18n/en.json": "application/json",
    "i18n/it.json": "application/json",
}
ICONS = {f"icons/icon-{size}.png": size for size in SIZES}
VENDOR = ("/vendor/leaflet/leaflet.js", "/vendor/leaflet/leaflet.css")


@functools.cache
def rider_assets(tile_url: str, attribution: str) -> dict[str, Asset]:
    """Every file of the app by URL path, for one set of tile settings."""
    assets = {
        f"/rider/{name}": Asset.of((HERE / name).read_bytes(), kind) for name, kind in FILES.items()
    }
    for name, size in ICONS.items():
        assets[f"/rider/{name}"] = Asset.of(icon_png(size), "image/png")
    page = (HERE / "index.html").read_text()
    page = page.replace("{tiles}", html.escape(tile_url)).replace(
        "{attribution}", html.escape(attribution)
    )
    assets["/"] = Asset.of(page.encode(), "text/html")
    assets["/manifest.webmanifest"] = Asset.of(
        (HERE / "manifest.webmanifest").read_bytes(), "application/manifest+json"
    )
    shell = ["/", *sorted(assets), *VENDOR]
    shell = list(dict.fromkeys(shell))
    version = hashlib.sha256(b"".join(a.etag.encode() for _, a in sorted(assets.items())))
    worker = (HERE / "sw.js").read_text()
    worker = worker.replace("__VERSION__", version.hexdigest()[:16])
    worker = worker.replace("__SHELL__", json.dumps(shell))
    assets["/sw.js"] = Asset.of(worker.encode(), JS)
    return assets


def _asset(request: Request[Any, Any, Any], path: str) -> Response[bytes]:
    http = services(request).settings.http
    asset = rider_assets(http.map_tile_url, http.map_tile_attribution).get(path)
    if asset is None:
        raise ApiError(404, f"no such file of the rider app: {path}")
    return asset_response(request.headers, asset)


def rider_page(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The app's page, which ``GET /`` answers a browser (``server/web.py``)."""
    return _asset(request, "/")


@get(
    "/rider/{name:path}",
    tags=["web"],
    summary="The rider app's scripts, styles, strings and icons",
    include_in_schema=False,
    opt=access("public"),
)
async def rider_file(request: Request[Any, Any, Any], name: FromPath[str]) -> Response[bytes]:
    return _asset(request, "/rider/" + name.lstrip("/"))


@get(
    ["/sw.js", "/manifest.webmanifest"],
    tags=["web"],
    summary="The rider app's service worker and web app manifest",
    include_in_schema=False,
    opt=access("public"),
)
async def rider_root_file(request: Request[Any, Any, Any]) -> Response[bytes]:
    # At the root: a service worker controls only the paths under its own.
    return _asset(request, request.url.path)
