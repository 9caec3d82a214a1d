"""Who may open an operator stream, and until when.

Browsers cannot set headers on a WebSocket or an EventSource, so the access
token may also come as a ``token`` query parameter. The stream ends when the
token expires: a signed-out or demoted operator must not keep watching on a
connection opened long ago. The client reconnects with a fresh token and
``since``.

SSE routes are HTTP and go through the app's guard (``server/access.py``);
WebSockets are checked here, by the handshake, against the rule their route
declares, so that a refusal is a close code (D17).
"""

from __future__ import annotations

import logging

from server.access import AccessDenied, Credential, admit_operator
from server.live.close_codes import CLOSE_FORBIDDEN, CLOSE_RATE_LIMITED, CLOSE_UNAUTHORIZED
from server.logs import redact_text
from server.model import Role
from server.services import Services

_CLOSE_CODES = {401: CLOSE_UNAUTHORIZED, 403: CLOSE_FORBIDDEN, 429: CLOSE_RATE_LIMITED}


class LiveAuthError(Exception):
    def __init__(
        self, status: int, close_code: int, reason: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.close_code = close_code
        self.reason = reason
        self.headers = headers or {}


async def authenticate(svc: Services, token: str | None, role: Role) -> Credential:
    """The operator behind an access token, at least ``role``, counted against RATE_LIMIT_API."""
    try:
        return await admit_operator(svc, token, role, "missing access token")
    except AccessDenied as exc:
        code = _CLOSE_CODES.get(exc.status, CLOSE_UNAUTHORIZED)
        raise LiveAuthError(exc.status, code, exc.reason, exc.headers) from None


def redact(text: str) -> str:
    """Credentials in ``text`` replaced (server/logs.py's rules, the one place they live)."""
    return redact_text(text)


class RedactTokens(logging.Filter):
    """Keep ``?token=…`` (and OsmAnd's ``?id=…``) out of the server's access log lines.

    uvicorn logs the path with its query for every request and WebSocket; an
    access token there would be readable by anyone with the logs for its
    lifetime.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def install_log_redaction() -> None:
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
