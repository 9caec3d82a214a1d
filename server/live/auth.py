"""Who may open an operator stream, and until when.

Browsers cannot set headers on a WebSocket or an EventSource, so the access
token may also come as a ``token`` query parameter. The stream ends when the
token expires: a signed-out or demoted operator must not keep watching on a
connection opened long ago. The client reconnects with a fresh token and
``since``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime

import jwt

from server.auth import InvalidToken, Principal, bearer
from server.live.close_codes import CLOSE_RATE_LIMITED, CLOSE_UNAUTHORIZED
from server.services import Services


class LiveAuthError(Exception):
    def __init__(
        self, status: int, close_code: int, reason: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.close_code = close_code
        self.reason = reason
        self.headers = headers or {}


def token_of(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    return bearer(headers.get("authorization")) or (query.get("token") or "").strip() or None


def token_expiry(token: str) -> datetime | None:
    """When a token that already passed verification expires."""
    claims = jwt.decode(token, options={"verify_signature": False})
    exp = claims.get("exp")
    return datetime.fromtimestamp(exp, UTC) if isinstance(exp, int | float) else None


async def authenticate(svc: Services, token: str | None) -> tuple[Principal, datetime | None]:
    """The operator behind an access token, counted against RATE_LIMIT_API like any call."""
    unauthorized = {"WWW-Authenticate": "Bearer"}
    if token is None:
        raise LiveAuthError(401, CLOSE_UNAUTHORIZED, "missing access token", unauthorized)
    try:
        principal = svc.tokens.verify(token, "access")
    except InvalidToken as exc:
        raise LiveAuthError(401, CLOSE_UNAUTHORIZED, str(exc), unauthorized) from None
    decision = await svc.limiter.hit(
        svc.settings.limits.rate_limit_api, "api", f"user:{principal.user_id}"
    )
    if not decision.allowed:
        raise LiveAuthError(429, CLOSE_RATE_LIMITED, "rate limit exceeded", decision.headers())
    # Every role (viewer and up) may watch the fleet, as on /v1/fleet/live.
    return principal, token_expiry(token)


# Operators' access tokens (``token``) and devices' tokens in OsmAnd reports (``id``).
_TOKEN_IN_QUERY = re.compile(r"([?&](?:token|id|deviceid)=)[^&\s\"]*")


def redact(text: str) -> str:
    return _TOKEN_IN_QUERY.sub(r"\1[redacted]", text)


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
