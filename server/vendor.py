"""``/vendor/leaflet/leaflet.js`` and ``.css``: Leaflet from the ``xstatic-leaflet`` package.

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
from server.http import ApiError
from server.rider.assets import Asset, asset_response

CACHE = "public, max-age=86400"
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
