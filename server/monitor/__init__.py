"""The wallboard at ``/monitor/``: the fleet's health, readable from across a room.

Plain HTML/JS/CSS, no build step; it signs in like the console (whose
``api.js``/``live.js`` modules it imports) and then follows the live stream
and ``/v1/fleet/summary`` (docs/console.md, "Wallboard").
"""

from __future__ import annotations

from pathlib import Path

from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router

from server.access import access

STATIC = Path(__file__).parent / "static"


def monitor_router() -> Router:
    return create_static_files_router(
        path="/monitor",
        directories=[STATIC],
        html_mode=True,
        name="monitor",
        opt=access("public"),
        cache_control=CacheControlHeader(no_cache=True),
    )
