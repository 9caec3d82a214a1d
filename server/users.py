"""Operator accounts for admins: list, create, change role or password, delete.

Answers never carry a password hash. A change that matters for access applies
at the user's next request and closes their live streams (docs/decisions.md
D55): a new role is read from the store on every request, a new password or
a deletion ends every sign-in. The last admin cannot be demoted or deleted
(409), so an installation always has someone who can manage it.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from server.access import access
from server.audit import record
from server.auth import Principal, hash_password
from server.devices import MAX_ID, MAX_NAME
from server.http import ApiError, services
from server.model import ROLES, Role, User
from server.sessions import check_password, json_body, small_body
from server.store.base import Conflict, LastAdmin

users_post = small_body(post, "users")
users_patch = small_body(patch, "users")


def user_json(user: User) -> dict[str, Any]:
    return {"id": user.id, "username": user.username, "role": user.role}


def _role(value: Any) -> Role:
    if value not in ROLES:
        raise ApiError(422, f"role: one of {', '.join(ROLES)}")
    role: Role = value
    return role


def _password(value: Any, key: str = "password") -> str:
    if not isinstance(value, str):
        raise ApiError(422, f"{key}: required string")
    return check_password(key, value)


def _username(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ApiError(422, "username: required string")
    name = value.strip()
    if len(name) > MAX_NAME or not name.isprintable():
        raise ApiError(422, f"username: at most {MAX_NAME} printable characters")
    return name


def _object(body: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(422, "body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(422, f"{unknown[0]}: unknown field; expected {', '.join(sorted(allowed))}")
    return body


def _known_id(user_id: int) -> int:
    if not 0 < user_id <= MAX_ID:
        raise ApiError(404, f"no user with id {user_id}")
    return user_id


@get("/v1/users", tags=["users"], summary="List operator accounts", opt=access("admin"))
async def list_users(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return {"users": [user_json(u) for u in await services(request).store.list_users()]}


@users_post("/v1/users", status_code=201, summary="Create an operator account", opt=access("admin"))
async def create_user(
    request: Request[Any, Any, Any], principal: NamedDependency[Principal]
) -> dict[str, Any]:
    body = _object(await json_body(request), {"username", "password", "role"})
    username = _username(body.get("username"))
    password = _password(body.get("password"))
    role = _role(body.get("role"))
    store = services(request).store
    try:
        user = await store.add_user(username, hash_password(password), role)
    except Conflict:
        raise ApiError(409, f"a user named {username!r} exists already") from None
    await record(store, principal, "user.create", "user", user.id, username=username, role=role)
    return user_json(user)


@users_patch(
    "/v1/users/{user_id:int}",
    summary="Change an account's role and/or password; applies at its next request",
    opt=access("admin"),
)
async def update_user(
    request: Request[Any, Any, Any], user_id: FromPath[int], principal: NamedDependency[Principal]
) -> dict[str, Any]:
    _known_id(user_id)
    body = _object(await json_body(request), {"role", "password"})
    if not body:
        raise ApiError(422, "body: give role and/or password")
    role = None if body.get("role") is None else _role(body["role"])
    password = None if body.get("password") is None else _password(body["password"])
    svc = services(request)
    try:
        user = await svc.store.update_user(
            user_id,
            role=role,
            password_hash=None if password is None else hash_password(password),
        )
    except LastAdmin as exc:
        raise ApiError(409, str(exc)) from None
    if user is None:
        raise ApiError(404, f"no user with id {user_id}")
    reason = "password changed; sign in again" if password else f"role is now {user.role}"
    await svc.end_streams(reason, user_id=user_id)
    # That a password was set, never what it is.
    changes: dict[str, Any] = {"username": user.username}
    if role is not None:
        changes["role"] = role
    if password is not None:
        changes["password"] = "set"
    await record(svc.store, principal, "user.update", "user", user_id, **changes)
    return user_json(user)


@delete(
    "/v1/users/{user_id:int}",
    status_code=204,
    tags=["users"],
    summary="Delete an account; its sign-ins end at once",
    opt=access("admin"),
)
async def delete_user(
    request: Request[Any, Any, Any], user_id: FromPath[int], principal: NamedDependency[Principal]
) -> None:
    _known_id(user_id)
    svc = services(request)
    # The name, for the audit log: once deleted, the id names nobody.
    gone = await svc.store.get_user(user_id)
    try:
        found = await svc.store.delete_user(user_id)
    except LastAdmin as exc:
        raise ApiError(409, str(exc)) from None
    if not found:
        raise ApiError(404, f"no user with id {user_id}")
    await svc.end_streams("account deleted", user_id=user_id)
    username = gone.username if gone is not None else None
    await record(svc.store, principal, "user.delete", "user", user_id, username=username)
