"""The wallboard at ``/monitor/``: the fleet's health, readable from across a room.

Plain HTML/JS/CSS, no build step; it signs in like the console (whose
``api.js``/``live.js`` modules it imports) and then follows the live stream
and ``/v1/fleet/summary`` (docs/console.md, "Wallboard").
"""

from __future__ import annotations

from pathlib import Path

from litestar import Router

from server.static_apps import static_app

STATIC = Path(__file__).parent / "static"


def monitor_router() -> Router:
    return static_app("/monitor", "monitor", STATIC, html_mode=True)
