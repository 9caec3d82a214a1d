"""Third-party browser assets served from their Python packages, and the map's settings.

Leaflet comes from the ``xstatic-leaflet`` package (never copied into the
repository) at ``/vendor/leaflet/…``; pages load ``leaflet.js`` and
``leaflet.css`` from there. ``GET /v1/map`` tells every page (console,
wallboard, share page, the rider app) which tiles to draw under the buses
(``MAP_TILE_URL``; empty: none, a plain background).
"""

from __future__ import annotations

from typing import Any

import xstatic.pkg.leaflet as leaflet
from litestar import Request, Router, get
from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router

from server.access import access
from server.http import services

LEAFLET_VERSION = leaflet.VERSION


def leaflet_router() -> Router:
    return create_static_files_router(
        path="/vendor/leaflet",
        directories=[leaflet.BASE_DIR],
        name="vendor-leaflet",
        opt=access("public"),
        # A package upgrade changes the files; a day's caching is safe enough.
        cache_control=CacheControlHeader(max_age=86400, public=True),
    )


@get("/v1/map", tags=["web"], summary="Map settings for the web pages", opt=access("public"))
async def map_settings(request: Request[Any, Any, Any]) -> dict[str, Any]:
    settings = services(request).settings
    return {
        "tile_url": settings.http.map_tile_url or None,
        "attribution": settings.http.map_attribution or None,
        "leaflet": LEAFLET_VERSION,
        "offline_after_s": settings.live.offline_after_s,
    }
