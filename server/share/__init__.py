"""The public share page ``/share/<token>``: one vehicle's live position, read-only.

An operator makes the link in the console (``POST /v1/vehicles/{id}/share``);
whoever has it sees that one vehicle on a map until the link expires or is
revoked. The page is the same for every token: it reads the token from its
own address and asks ``GET /v1/shared/{token}`` every few seconds.
"""

from __future__ import annotations

from pathlib import Path

from litestar import Response, Router, get
from litestar.params import FromPath

from server.access import access
from server.static_apps import static_app

STATIC = Path(__file__).parent / "static"
PAGE = (STATIC / "index.html").read_text()


@get(
    "/share/{token:str}",
    tags=["web"],
    summary="The public page of a share link",
    opt=access("public"),
    include_in_schema=False,
)
async def share_page(token: FromPath[str]) -> Response[str]:
    # Any token gets the page: whether it is valid is the API's answer, shown by the page.
    return Response(
        PAGE,
        media_type="text/html; charset=utf-8",
        # The address is a secret: keep it out of Referer headers sent to tile servers.
        headers={"Cache-Control": "no-cache", "Referrer-Policy": "no-referrer"},
    )


def share_assets_router() -> Router:
    return static_app("/share-assets", "share-assets", STATIC, html_mode=False)
