"""The web apps' folders of plain files (console, wallboard, share page), served as they are.

Each app has a folder of HTML/JS/CSS and no build step; all of them are
served the same way, so a change of policy is made here once: anyone may
fetch them (a page loads before its user signs in; the API it calls checks
access), and a browser revalidates them on every use.
"""

from __future__ import annotations

from pathlib import Path

from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router

from server.access import access


def static_app(path: str, name: str, directory: Path, *, html_mode: bool) -> Router:
    """``directory`` at ``path``; ``html_mode``: ``path/`` answers its ``index.html``."""
    return create_static_files_router(
        path=path,
        directories=[directory],
        html_mode=html_mode,
        name=name,
        opt=access("public"),
        # Small files, changed by upgrades: revalidate rather than run stale code.
        cache_control=CacheControlHeader(no_cache=True),
    )
