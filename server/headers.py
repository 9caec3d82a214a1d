"""Security headers on every HTTP answer (docs/operations.md, "Security headers").

- ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy:
  strict-origin-when-cross-origin`` (tile servers such as OpenStreetMap's ask
  for a referrer; the origin is all they get).
- A Content-Security-Policy the web apps live within: scripts only from this
  origin (no inline scripts, no ``eval``), styles from this origin (inline
  styles allowed: Leaflet and the landing page use them), images from this
  origin, ``data:`` and any ``https:`` host (map tiles), connections to this
  origin over HTTP and WebSocket, no frames, no plugins.
- ``Strict-Transport-Security`` when the request came over TLS (directly, or
  through nginx's ``X-Forwarded-Proto``, which ``serve`` trusts).

The API viewers under ``/schema`` load their scripts from a CDN with inline
start-up code, so they get the other headers but no CSP; turn them off in
production with ``API_DOCS=false``.
"""

from __future__ import annotations

import re
from typing import Any

from litestar.types import ASGIApp, Receive, Send

_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")
_FIXED = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
]
HSTS = (b"strict-transport-security", b"max-age=31536000")


def content_security_policy(host: str | None) -> str:
    # 'self' covers ws:/wss: of the same origin in current browsers; older ones
    # (Safari before 15.4) need the WebSocket origins named, so they are.
    sockets = f" ws://{host} wss://{host}" if host and _HOST.match(host) else ""
    return (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: https:; "
        f"connect-src 'self'{sockets}; "
        "object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self'"
    )


def _host(scope: Any) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"host":
            return str(value.decode("latin-1"))
    return None


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = list(_FIXED)
        if not str(scope.get("path", "")).startswith("/schema"):
            extra.append(
                (b"content-security-policy", content_security_policy(_host(scope)).encode())
            )
        if scope.get("scheme") == "https":
            extra.append(HSTS)

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                present = {name.lower() for name, _ in headers}
                headers += [(n, v) for n, v in extra if n not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
