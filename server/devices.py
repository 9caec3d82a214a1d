"""Device management for operators: list, register, rotate and revoke bus units.

A token is shown exactly once, in the answer that creates it, and only its
hash is stored (docs/decisions.md D2). Listing needs viewer; anything that
issues or withdraws a credential needs admin.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from server.access import access
from server.audit import record
from server.auth import Principal, hash_device_token, new_device_token
from server.http import ApiError, json_object, services
from server.model import Device
from server.store.base import Conflict, Store
from server.vehicle import iso, last_seen

MAX_NAME = 64
# Ids are 64-bit in both stores; a larger number would fail in the driver, not 404.
MAX_ID = 2**63 - 1
# Small on purpose: the body is a name and a route; anything larger is a mistake.
MAX_BODY = 4096


def device_json(device: Device) -> dict[str, Any]:
    error = device.auth_error_at
    return {
        "id": device.id,
        "name": device.name,
        "route": device.route,
        "active": device.active,
        "in_service": device.in_service,
        # The device's own threshold; null: the server's OFFLINE_AFTER.
        "offline_after_s": device.offline_after_s,
        "agent_version": device.agent_version,
        "backlog": device.backlog,
        "auth_error_at": None if error is None else iso(error),
    }


def _known_id(device_id: int) -> int:
    if not 0 < device_id <= MAX_ID:
        raise ApiError(404, f"no device with id {device_id}")
    return device_id


def _text(value: Any, field: str, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise ApiError(422, f"{field}: must be a string")
    text: str = value.strip()
    if not text:
        raise ApiError(422, f"{field}: must not be empty")
    if len(text) > MAX_NAME:
        raise ApiError(422, f"{field}: at most {MAX_NAME} characters")
    if not text.isprintable():
        raise ApiError(422, f"{field}: control characters are not allowed")
    return text


def parse_new_device(raw: bytes) -> tuple[str, str | None]:
    """``(name, route)`` from a ``{"name": …, "route": …}`` body; 4xx with a reason."""
    doc = json_object(raw, MAX_BODY, example='{"name": "bus-17"}')
    name = _text(doc.get("name"), "name", required=True)
    assert name is not None
    return name, _text(doc.get("route"), "route", required=False)


async def last_heard(store: Store) -> dict[int, datetime]:
    """When each device was last heard from: its newest fix's arrival or its last heartbeat."""
    heard = {p.device_id: last_seen(p) for p in await store.live_positions()}
    for s in await store.seen_devices():
        heard[s.device_id] = max(last_seen(s), heard.get(s.device_id, s.seen.at))
    return heard


@get("/v1/devices", tags=["devices"], summary="List bus units", opt=access("viewer"))
async def list_devices(request: Request[Any, Any, Any]) -> dict[str, Any]:
    store = services(request).store
    devices = await store.list_devices()
    heard = await last_heard(store)
    listed = []
    for d in devices:
        at = heard.get(d.id)
        listed.append({**device_json(d), "last_seen": None if at is None else iso(at)})
    return {"devices": listed}


@post(
    "/v1/devices",
    status_code=201,
    tags=["devices"],
    summary="Register a bus unit",
    opt=access("admin"),
)
async def create_device(
    request: Request[Any, Any, Any], principal: NamedDependency[Principal]
) -> dict[str, Any]:
    name, route = parse_new_device(await request.body())
    token = new_device_token()
    store = services(request).store
    try:
        device = await store.add_device(name, hash_device_token(token), route)
    except Conflict:
        raise ApiError(409, f"a device named {name!r} exists already") from None
    await record(store, principal, "device.create", "device", device.id, name=name)
    return {**device_json(device), "token": token}


async def _change_token(
    request: Request[Any, Any, Any],
    device_id: int,
    change: Callable[[Store], Awaitable[bool]],
) -> None:
    """An admin's rotate or revoke: applied, this process's token cache emptied, 404 if unknown."""
    _known_id(device_id)
    svc = services(request)
    found = await change(svc.store)
    svc.devices.forget()
    if not found:
        raise ApiError(404, f"no device with id {device_id}")
    # Its screens show the change (an auth error, should the unit keep calling).
    await svc.publish_device(await svc.store.device_view(device_id))


@post(
    "/v1/devices/{device_id:int}/rotate",
    status_code=200,
    tags=["devices"],
    summary="Issue a new token; the old one stops working within DEVICE_CACHE_TTL",
    opt=access("admin"),
)
async def rotate_device(
    request: Request[Any, Any, Any], device_id: FromPath[int], principal: NamedDependency[Principal]
) -> dict[str, Any]:
    token = new_device_token()
    await _change_token(
        request, device_id, lambda s: s.set_device_token(device_id, hash_device_token(token))
    )
    await record(services(request).store, principal, "device.rotate", "device", device_id)
    return {"id": device_id, "token": token}


@post(
    "/v1/devices/{device_id:int}/revoke",
    status_code=200,
    tags=["devices"],
    summary="Withdraw a device's token",
    opt=access("admin"),
)
async def revoke_device(
    request: Request[Any, Any, Any], device_id: FromPath[int], principal: NamedDependency[Principal]
) -> dict[str, Any]:
    await _change_token(request, device_id, lambda s: s.revoke_device(device_id))
    await record(services(request).store, principal, "device.revoke", "device", device_id)
    return {"id": device_id, "revoked": True}
