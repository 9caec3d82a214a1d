"""HTTP plumbing shared by the route modules: JSON errors, who is calling, rate limits."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from server.auth import InvalidToken, Principal, bearer
from server.model import Role
from server.services import Services
from server.store.base import StoreUnavailable

log = logging.getLogger(__name__)


class ApiError(HTTPException):
    """An error answered as ``{"error": reason, ...extra}`` with optional headers."""

    def __init__(
        self,
        status_code: int,
        reason: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(status_code=status_code, detail=reason, headers=headers, extra=extra)


# How long a client should wait when the database is away; short, because
# agents keep their buffer and retry with jitter anyway.
STORE_RETRY_AFTER_S = 5


def store_unavailable(headers: dict[str, str] | None = None) -> ApiError:
    """The 503 every route answers while the store is away (never a 500)."""
    return ApiError(
        503,
        "store unavailable",
        headers={**(headers or {}), "Retry-After": str(STORE_RETRY_AFTER_S)},
    )


def error_response(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if isinstance(exc, StoreUnavailable):
        # A safety net: a route that forgot to catch it still answers 503.
        exc = store_unavailable()
    if isinstance(exc, HTTPException):
        body: dict[str, Any] = {"error": exc.detail}
        if isinstance(exc.extra, dict):
            body.update(exc.extra)
        elif isinstance(exc, ValidationException) and exc.extra:
            body["details"] = exc.extra
        return Response(body, status_code=exc.status_code, headers=exc.headers or None)
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return Response({"error": "internal error"}, status_code=HTTP_500_INTERNAL_SERVER_ERROR)


def services(request: Request[Any, Any, Any]) -> Services:
    svc: Services = request.app.state.services
    return svc


async def current_user(request: Request[Any, Any, Any], role: Role = "viewer") -> Principal:
    """The operator behind the access token, counted against RATE_LIMIT_API.

    401 for a missing, bad or expired token; 403 when the role is too low;
    429 past the per-user limit.
    """
    svc = services(request)
    token = bearer(request.headers.get("authorization"))
    if token is None:
        raise ApiError(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    try:
        principal = svc.tokens.verify(token, "access")
    except InvalidToken as exc:
        raise ApiError(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None
    decision = await svc.limiter.hit(
        svc.settings.limits.rate_limit_api, "api", f"user:{principal.user_id}"
    )
    if not decision.allowed:
        raise ApiError(429, "rate limit exceeded", headers=decision.headers())
    if not principal.can(role):
        raise ApiError(403, f"needs role {role} or higher; you are {principal.role}")
    return principal
