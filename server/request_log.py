"""A request id for every request and WebSocket, and the access log line it ends with.

Wraps the whole application (``create_app``), so requests the router refuses
(404, 405) are logged too. The id is the client's ``X-Request-ID`` when it is
sane (1 to 64 of ``A-Za-z0-9._-``; nginx's ``$request_id`` is), else a new
one; it is echoed in the answer's ``X-Request-ID`` and bound to every log line
written while the request runs. The access line carries method, path, the
query (redacted like every field, ``server/logs.py``), status, duration and
client address; never a body or a header value.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import structlog
from litestar.types import ASGIApp, Receive, Send

_SANE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
HEADER = b"x-request-id"

access_log = structlog.stdlib.get_logger("bustracker.access")


def request_id(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name.lower() == HEADER:
            text = value.decode("latin-1")
            return text if _SANE_ID.match(text) else uuid.uuid4().hex
    return uuid.uuid4().hex


class RequestLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        rid = request_id(list(scope.get("headers", [])))
        bound = structlog.contextvars.bind_contextvars(request_id=rid)
        started = time.perf_counter()
        status: list[int] = []

        async def send_with_id(message: Any) -> None:
            kind = message["type"]
            if kind in ("http.response.start", "websocket.accept"):
                headers = list(message.get("headers") or [])
                headers.append((HEADER, rid.encode()))
                message = {**message, "headers": headers}
                status.append(int(message.get("status", 101)))
            elif kind == "websocket.close" and not status:
                status.append(403)  # refused before accepting
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            client: Any = scope.get("client")
            access_log.info(
                "request",
                method="WS" if scope["type"] == "websocket" else scope.get("method"),
                path=scope.get("path"),
                query=scope.get("query_string", b"").decode("latin-1"),
                status=status[0] if status else None,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
                client=client[0] if client else None,
            )
            structlog.contextvars.reset_contextvars(**bound)
