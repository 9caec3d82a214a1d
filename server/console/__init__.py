"""The operator console at ``/console/``: plain HTML/JS/CSS modules, no build step.

The files in ``static/`` are served as they are; the page signs in with
``/v1/auth/login`` and then only talks to the API like any other client
(docs/console.md). Leaflet comes from ``/vendor/leaflet/`` (``server/vendor.py``).
"""

from __future__ import annotations

from pathlib import Path

from litestar import Router

from server.static_apps import static_app

STATIC = Path(__file__).parent / "static"


def console_router() -> Router:
    return static_app("/console", "console", STATIC, html_mode=True)
