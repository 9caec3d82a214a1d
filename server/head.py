"""``HEAD`` answered as ``GET`` without its body, on every route that has a GET.

Litestar routes a HEAD only to a handler declared for it, so ``curl -I`` and the
uptime checkers that probe with HEAD got 405 from ``/health`` and every page.
RFC 9110 asks a general-purpose server to support HEAD wherever GET works,
with the headers GET would send (``Content-Length`` and ``ETag`` included).

The app sees a GET; its body is not passed on. The first piece of it ends the
answer instead, so a streaming one (the riders' SSE feed) ends too: once the
answer is complete, ASGI's ``receive`` says the client has gone, and the
stream stops as it does for a real disconnect.
"""

from __future__ import annotations

from typing import Any

from litestar.types import ASGIApp, Message, Receive, Send


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        answered = False

        async def send_headers_only(message: Message) -> None:
            nonlocal answered
            if message["type"] != "http.response.body":
                await send(message)
            elif not answered:
                answered = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        as_get: Any = {**scope, "method": "GET"}
        await self.app(as_get, receive, send_headers_only)
