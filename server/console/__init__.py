"""The operator console at ``/console/``: plain HTML/JS/CSS modules, no build step.

The files in ``static/`` are served as they are; the page signs in with
``/v1/auth/login`` and then only talks to the API like any other client
(docs/console.md). Leaflet comes from ``/vendor/leaflet/`` (``server/vendor.py``).
"""

from __future__ import annotations

from pathlib import Path

from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router

from server.access import access

STATIC = Path(__file__).parent / "static"


def console_router() -> Router:
    return create_static_files_router(
        path="/console",
        directories=[STATIC],
        html_mode=True,
        name="console",
        opt=access("public"),
        # Small files, changed by upgrades: revalidate rather than run stale code.
        cache_control=CacheControlHeader(no_cache=True),
    )
