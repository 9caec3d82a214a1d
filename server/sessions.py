"""Operator sign-ins: log in, refresh, log out, change one's own password.

A sign-in is a refresh token family, kept in the store (``sessions`` table).
Every token of a sign-in names its family; access tokens are checked against
it on each request (``server/access.py``), so signing out, a new password or
a deleted account ends them at once. Each refresh replaces the refresh token;
presenting a replaced one again is taken as theft and ends the family, for the
thief and the owner alike (docs/decisions.md D55).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from litestar import Request, post
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException
from litestar.handlers import HTTPRouteHandler

from server.access import access
from server.audit import record
from server.auth import Claims, InvalidToken, Principal, hash_password, new_family, verify_password
from server.http import ApiError, services
from server.model import User
from server.services import Services
from server.settings import RateLimit

# Password guessing is throttled per account and per client address; both are
# counted so that neither rotating accounts nor rotating addresses helps. Only
# failures count: an operator signing in often never locks themselves out.
LOGIN_RATE = RateLimit(10, 60)
# Sign-in bodies are a name and a password; anything bigger is not a sign-in.
AUTH_BODY_BYTES = 4096
MIN_PASSWORD = 8
MAX_PASSWORD = 1024

Route = TypeVar("Route", bound=HTTPRouteHandler)


def small_body(
    method: Callable[..., Route], tag: str, *, usual_status: int | None = None
) -> Callable[..., Route]:
    """``method`` (``post``, ``patch``, …) for the routes of ``tag`` that read a sign-in
    or account body: a few short fields, refused (413) past AUTH_BODY_BYTES. Each
    route still says who may call it (``opt=access(…)``) and may answer another
    ``status_code`` than the usual one."""

    def route(
        path: str, *, summary: str, opt: dict[str, Any], status_code: int | None = usual_status
    ) -> Route:
        return method(
            path,
            status_code=status_code,
            tags=[tag],
            summary=summary,
            opt=opt,
            request_max_body_size=AUTH_BODY_BYTES,
        )

    return route


# They answer a token pair (200), not something created (201, a POST's default).
auth_post = small_body(post, "auth", usual_status=200)


def fields_of(body: Any, *keys: str) -> list[str]:
    if not isinstance(body, dict):
        raise ApiError(422, "body must be a JSON object")
    values = []
    for key in keys:
        value = body.get(key)
        if not isinstance(value, str) or not value:
            raise ApiError(422, f"{key}: required string")
        values.append(value)
    return values


def check_password(key: str, password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ApiError(422, f"{key}: {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


async def json_body(request: Request[Any, Any, Any]) -> Any:
    try:
        return await request.json()
    except HTTPException:
        raise  # 413 for a body over the route's limit
    except Exception:
        raise ApiError(422, "body is not JSON") from None


async def start_sign_in(svc: Services, user: User) -> dict[str, Any]:
    """A new sign-in of ``user``: its family stored, its first token pair."""
    now = time.time()
    family, jti = new_family(), uuid.uuid4().hex
    await svc.store.start_session(family, user.id, jti, svc.tokens.expiry("refresh", now))
    return svc.tokens.pair(Principal(user.id, user.username, user.role), family, jti, now)


async def _guard_guesses(svc: Services, request: Request[Any, Any, Any], username: str) -> Any:
    """Refuse (429) when this account or address used its budget of failures; the keys."""
    client = request.client.host if request.client else "unknown"
    keys = (("login-user", username.lower()), ("login-ip", client))
    for scope, key in keys:
        decision = await svc.limiter.check(LOGIN_RATE, scope, key)
        if not decision.allowed:
            raise ApiError(429, "too many failed sign-ins", headers=decision.headers())
    return keys


async def _count_failure(svc: Services, keys: Any) -> None:
    for scope, key in keys:
        await svc.limiter.hit(LOGIN_RATE, scope, key)


async def _refresh_claims(svc: Services, request: Request[Any, Any, Any]) -> Claims:
    """What the body's ``refresh_token`` says, once its signature and expiry are good (401)."""
    (token,) = fields_of(await json_body(request), "refresh_token")
    try:
        return svc.tokens.claims(token, "refresh")
    except InvalidToken as exc:
        raise ApiError(401, str(exc)) from None


@auth_post("/v1/auth/login", summary="Sign in an operator", opt=access("public"))
async def login(request: Request[Any, Any, Any]) -> dict[str, Any]:
    svc = services(request)
    username, password = fields_of(await json_body(request), "username", "password")
    keys = await _guard_guesses(svc, request, username)
    user = await svc.store.user_by_name(username)
    if not verify_password(user.password_hash if user else None, password) or user is None:
        await _count_failure(svc, keys)
        raise ApiError(401, "wrong username or password")
    return await start_sign_in(svc, user)


@auth_post(
    "/v1/auth/refresh",
    summary="Renew an access token (the refresh token is replaced too)",
    opt=access("public"),
)
async def refresh(request: Request[Any, Any, Any]) -> dict[str, Any]:
    svc = services(request)
    claims = await _refresh_claims(svc, request)
    if claims.family is None:
        raise ApiError(401, "signed out; sign in again")
    now = time.time()
    new_jti = uuid.uuid4().hex
    user_id = await svc.store.rotate_session(
        claims.family, claims.jti, new_jti, svc.tokens.expiry("refresh", now), int(now)
    )
    if user_id is None:
        # Used before (stolen, or a client that lost the answer), or signed out.
        await svc.end_streams("signed out", family=claims.family)
        raise ApiError(401, "refresh token already used or signed out; sign in again")
    # Re-read the user so a changed role is in the new access token.
    user = await svc.store.get_user(user_id)
    if user is None:
        raise ApiError(401, "user no longer exists")
    principal = Principal(user.id, user.username, user.role)
    return svc.tokens.pair(principal, claims.family, new_jti, now)


@auth_post(
    "/v1/auth/logout",
    status_code=204,
    summary="Sign out: the sign-in's refresh and access tokens stop working",
    opt=access("public"),
)
async def logout(request: Request[Any, Any, Any]) -> None:
    svc = services(request)
    claims = await _refresh_claims(svc, request)
    if claims.family is not None:
        await svc.store.end_session(claims.family)
        await svc.end_streams("signed out", family=claims.family)


@auth_post(
    "/v1/auth/password",
    summary="Change one's own password; every sign-in ends, this one gets new tokens",
    opt=access("viewer"),
)
async def change_password(
    request: Request[Any, Any, Any], principal: NamedDependency[Principal]
) -> dict[str, Any]:
    svc = services(request)
    current, new = fields_of(await json_body(request), "current", "new")
    check_password("new", new)
    keys = await _guard_guesses(svc, request, principal.username)
    user = await svc.store.get_user(principal.user_id)
    if user is None or not verify_password(user.password_hash, current):
        await _count_failure(svc, keys)
        raise ApiError(403, "current: wrong password")
    changed = await svc.store.update_user(user.id, password_hash=hash_password(new))
    if changed is None:
        raise ApiError(401, "user no longer exists")
    # As an admin's reset is recorded (server/users.py), with the person as the actor.
    await record(svc.store, principal, "user.update", "user", user.id,
                 username=user.username, password="set")  # fmt: skip
    await svc.end_streams("password changed; sign in again", user_id=user.id)
    return await start_sign_in(svc, changed)
