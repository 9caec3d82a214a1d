"""Operator sign-in: ``POST /v1/auth/login`` and ``POST /v1/auth/refresh``."""

from __future__ import annotations

from typing import Any

from litestar import Request, post

from server.access import access
from server.auth import InvalidToken, Principal, verify_password
from server.http import ApiError, services
from server.settings import RateLimit

# Password guessing is throttled per account and per client address; both are
# counted so that neither rotating accounts nor rotating addresses helps.
LOGIN_RATE = RateLimit(10, 60)


def _credentials(body: Any, *keys: str) -> list[str]:
    if not isinstance(body, dict):
        raise ApiError(422, "body must be a JSON object")
    values = []
    for key in keys:
        value = body.get(key)
        if not isinstance(value, str) or not value:
            raise ApiError(422, f"{key}: required string")
        values.append(value)
    return values


async def _json(request: Request[Any, Any, Any]) -> Any:
    try:
        return await request.json()
    except Exception:
        raise ApiError(422, "body is not JSON") from None


@post(
    "/v1/auth/login",
    status_code=200,
    tags=["auth"],
    summary="Sign in an operator",
    opt=access("public"),
)
async def login(request: Request[Any, Any, Any]) -> dict[str, Any]:
    svc = services(request)
    username, password = _credentials(await _json(request), "username", "password")
    client = request.client.host if request.client else "unknown"
    for scope, key in (("login-user", username.lower()), ("login-ip", client)):
        decision = await svc.limiter.hit(LOGIN_RATE, scope, key)
        if not decision.allowed:
            raise ApiError(429, "too many sign-in attempts", headers=decision.headers())
    user = await svc.store.user_by_name(username)
    if not verify_password(user.password_hash if user else None, password) or user is None:
        raise ApiError(401, "wrong username or password")
    return svc.tokens.pair(Principal(user.id, user.username, user.role))


@post(
    "/v1/auth/refresh",
    status_code=200,
    tags=["auth"],
    summary="Renew an access token",
    opt=access("public"),
)
async def refresh(request: Request[Any, Any, Any]) -> dict[str, Any]:
    svc = services(request)
    (token,) = _credentials(await _json(request), "refresh_token")
    try:
        principal = svc.tokens.verify(token, "refresh")
    except InvalidToken as exc:
        raise ApiError(401, str(exc)) from None
    # Re-read the user so a deleted account or a changed role takes effect.
    user = await svc.store.get_user(principal.user_id)
    if user is None:
        raise ApiError(401, "user no longer exists")
    return svc.tokens.pair(Principal(user.id, user.username, user.role))
