"""Who may call a route: every route declares one rule, and one guard enforces it.

A route declares its rule on its decorator, ``@get(..., opt=access("viewer"))``;
``create_app`` installs ``enforce_access`` as the app's guard and the
``principal``/``credential`` dependencies. The rules (docs/decisions.md,
"Access rules are declared on routes"):

- ``public``: anyone; nothing is checked.
- ``viewer``, ``operator``, ``admin``: an operator's access token
  (``Authorization: Bearer …``; streams also take ``?token=``), counted against
  RATE_LIMIT_API; 401 without a valid one, 429 past the limit, 403 when the
  role is too low. The guard puts the ``Principal`` in ``request.user`` and the
  ``Credential`` in ``request.auth``; handlers take them as the ``principal``
  and ``credential`` dependencies.
- ``device``: a bus unit's token. Where it sits is part of each protocol (a
  header in v1, the ``id`` query or body field in OsmAnd), so ingest's ``admit``
  step checks it (``server/ingest.py``) and the guard lets the request through.

WebSocket upgrades are let through too: a browser cannot read the status of a
refused upgrade (D17), so the handshake (``server/live/ws.py``) enforces the
route's declared rule after accepting, closing with 4401/4429.

A route that declares no rule is refused with a 500 (it fails closed), and
``tests/server/test_access.py`` fails on it before that.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

import jwt
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import Provide
from litestar.enums import ScopeType
from litestar.handlers import HTTPRouteHandler
from litestar.handlers.base import BaseRouteHandler

from server.auth import InvalidToken, Principal, bearer
from server.http import ApiError
from server.model import Role
from server.services import Services

log = logging.getLogger(__name__)

Access = Literal["public", "device", "viewer", "operator", "admin"]
RULES: tuple[Access, ...] = ("public", "device", "viewer", "operator", "admin")
# The role an operator needs for each rule; None where no operator signs in.
_ROLE: dict[Access, Role | None] = {
    "public": None,
    "device": None,
    "viewer": "viewer",
    "operator": "operator",
    "admin": "admin",
}
_RULE_KEY = "access"
_QUERY_TOKEN_KEY = "access_token_in_query"
UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


def access(rule: Access, *, token_in_query: bool = False) -> dict[str, Any]:
    """The ``opt`` of a route that follows ``rule``.

    ``token_in_query``: the access token may also come as ``?token=`` (live
    streams: browsers' ``EventSource`` and ``WebSocket`` cannot set headers).
    """
    opt: dict[str, Any] = {_RULE_KEY: rule}
    if token_in_query:
        opt[_QUERY_TOKEN_KEY] = True
    return opt


def rule_of(handler: BaseRouteHandler) -> Access | None:
    """The rule a route handler declares, or None when it declares none (or a misspelt one)."""
    rule = handler.opt.get(_RULE_KEY)
    return cast(Access, rule) if rule in RULES else None


def role_of(rule: Access) -> Role | None:
    """The least operator role ``rule`` asks for; None for public and device routes."""
    return _ROLE[rule]


class AccessDenied(Exception):
    """An operator credential refused: the HTTP status, the reason and headers to answer with."""

    def __init__(self, status: int, reason: str, headers: Mapping[str, str]) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = dict(headers)


@dataclass(frozen=True, slots=True)
class Credential:
    """The access token an operator was let in with (``request.auth``)."""

    principal: Principal
    expires_at: datetime | None
    # The sign-in (refresh token family) the token belongs to; streams end with it.
    family: str = ""


def token_of(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """An access token from ``Authorization: Bearer …``, else from ``?token=``."""
    return bearer(headers.get("authorization")) or (query.get("token") or "").strip() or None


def token_expiry(token: str) -> datetime | None:
    """When a token that already passed verification expires."""
    claims = jwt.decode(token, options={"verify_signature": False})
    exp = claims.get("exp")
    return datetime.fromtimestamp(exp, UTC) if isinstance(exp, int | float) else None


async def admit_operator(svc: Services, token: str | None, role: Role, missing: str) -> Credential:
    """The operator behind an access token, if at least ``role``; raises AccessDenied.

    401 (``missing`` when there is no token) for a missing, bad or expired token,
    or one whose sign-in has ended (signed out, new password, user deleted);
    429 past the per-user RATE_LIMIT_API; 403 when the role is too low. The
    role is the user's as stored now, not the one the token was issued with,
    so a demotion applies to the very next request (docs/decisions.md D55).
    """
    if token is None:
        raise AccessDenied(401, missing, UNAUTHORIZED)
    try:
        claims = svc.tokens.claims(token, "access")
    except InvalidToken as exc:
        raise AccessDenied(401, str(exc), UNAUTHORIZED) from None
    decision = await svc.limiter.hit(
        svc.settings.limits.rate_limit_api, "api", f"user:{claims.principal.user_id}"
    )
    if not decision.allowed:
        raise AccessDenied(429, "rate limit exceeded", decision.headers())
    user = None
    if claims.family is not None:
        user = await svc.store.session_user(claims.family, int(time.time()))
    if user is None or user.id != claims.principal.user_id:
        raise AccessDenied(401, "signed out; sign in again", UNAUTHORIZED)
    principal = Principal(user.id, user.username, user.role)
    if not principal.can(role):
        raise AccessDenied(403, f"needs role {role} or higher; you are {principal.role}", {})
    return Credential(principal, token_expiry(token), claims.family or "")


def _generated_options(handler: BaseRouteHandler) -> bool:
    return (
        isinstance(handler, HTTPRouteHandler)
        and handler.http_methods == {"OPTIONS"}
        and handler.fn.__module__.startswith("litestar.")
    )


async def enforce_access(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """The app's guard: apply the rule the route declares (see the module's docstring)."""
    scope = connection.scope
    rule = rule_of(handler)
    if rule is None:
        if _generated_options(handler):
            return  # Litestar's own answer listing a path's methods
        log.error("route %s declares no access rule; refusing", scope.get("path"))
        raise ApiError(500, "route declares no access rule")
    role = role_of(rule)
    if scope["type"] == ScopeType.WEBSOCKET:
        if rule == "device":
            raise ApiError(500, "no device rule on WebSocket routes")
        return  # enforced by the handshake, after accepting (D17)
    if role is None:
        return  # public, or device: checked by ingest's admit step
    svc: Services = connection.app.state.services
    if handler.opt.get(_QUERY_TOKEN_KEY):
        token, missing = token_of(connection.headers, connection.query_params), "access token"
    else:
        token, missing = bearer(connection.headers.get("authorization")), "bearer token"
    try:
        credential = await admit_operator(svc, token, role, f"missing {missing}")
    except AccessDenied as exc:
        raise ApiError(exc.status, exc.reason, headers=exc.headers or None) from None
    scope["user"] = credential.principal
    scope["auth"] = credential


def _principal(request: Request[Any, Any, Any]) -> Principal:
    # request.user raises if the guard set none: a public or device route asked for it.
    principal: Principal = request.user
    return principal


def _credential(request: Request[Any, Any, Any]) -> Credential:
    credential: Credential = request.auth
    return credential


# What create_app provides to operator routes that name them in their signature:
# ``principal: NamedDependency[Principal]``, ``credential: NamedDependency[Credential]``.
DEPENDENCIES = {
    "principal": Provide(_principal, sync_to_thread=False),
    "credential": Provide(_credential, sync_to_thread=False),
}
