"""Leaflet from the ``xstatic-leaflet`` package, and the map's settings for every page.

``/vendor/leaflet/leaflet.js`` and ``.css`` serve Leaflet; ``GET /v1/map`` tells
every page (console, wallboard, share page, the rider app) which tiles to draw
under the buses (``MAP_TILE_URL``; empty: none, a plain background).

Third-party web code is never copied into the repository (docs/decisions.md):
the files come from the installed package, read once at start-up, gzipped and
served with an ETag (``server/rider/assets.py``). A browser may keep them a day;
the ETag is the content's hash, so after an upgrade a revalidation fetches the new file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import xstatic.pkg.leaflet as leaflet
from litestar import Request, Response, get
from litestar.params import FromPath

from server.access import access
from server.http import ApiError, services
from server.rider.assets import Asset, asset_response

CACHE = "public, max-age=86400"
LEAFLET_VERSION = leaflet.VERSION
_TYPES = {"leaflet.js": "text/javascript", "leaflet.css": "text/css"}


def _load() -> dict[str, Asset]:
    base = Path(leaflet.BASE_DIR)
    return {name: Asset.of((base / name).read_bytes(), kind) for name, kind in _TYPES.items()}


LEAFLET = _load()


@get(
    "/vendor/leaflet/{name:str}",
    tags=["web"],
    summary="Leaflet's script and stylesheet (xstatic-leaflet)",
    include_in_schema=False,
    opt=access("public"),
)
async def leaflet_file(request: Request[Any, Any, Any], name: FromPath[str]) -> Response[bytes]:
    asset = LEAFLET.get(name)
    if asset is None:
        raise ApiError(404, f"no vendor file {name!r}; there are {', '.join(LEAFLET)}")
    return asset_response(request.headers, asset, CACHE)


@get("/v1/map", tags=["web"], summary="Map settings for the web pages", opt=access("public"))
async def map_settings(request: Request[Any, Any, Any]) -> dict[str, Any]:
    settings = services(request).settings
    return {
        "tile_url": settings.http.map_tile_url or None,
        "attribution": settings.http.map_tile_attribution or None,
        "leaflet": LEAFLET_VERSION,
        "offline_after_s": settings.live.offline_after_s,
    }
