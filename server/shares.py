"""Share links: a read-only public link to one vehicle's live position, expiring, revocable.

``POST /v1/vehicles/{id}/share`` (operator) answers the token once (only its
hash is kept, like device tokens); the page at ``/share/<token>`` (the
console's) reads ``GET /v1/shared/{token}`` (public): the vehicle as riders
see it, 404 for an unknown or revoked link, 410 once expired.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from litestar import Request, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from server.access import access
from server.audit import record
from server.auth import Principal
from server.devices import MAX_ID
from server.enroll import _object, expires_in
from server.http import ApiError, services
from server.live.bus import LiveBus
from server.model import Share
from server.vehicle import RIDER_STATES, iso, public_view

DEFAULT_TTL = timedelta(hours=24)
MAX_TTL_S = 30 * 86400
MAX_TOKEN = 128


def share_token_hash(token: str) -> str:
    return hashlib.sha256(b"share:" + token.encode("utf-8", "surrogatepass")).hexdigest()


def share_json(share: Share, now: datetime) -> dict[str, Any]:
    revoked = share.revoked_at
    return {
        "id": share.id,
        "vehicle_id": share.vehicle_id,
        "created_by": share.created_by,
        "created_at": iso(share.created_at),
        "expires_at": iso(share.expires_at),
        "revoked_at": None if revoked is None else iso(revoked),
        "active": revoked is None and share.expires_at > now,
    }


def _known(kind: str, ident: int) -> None:
    if not 0 < ident <= MAX_ID:
        raise ApiError(404, f"no {kind} with id {ident}")


@post(
    "/v1/vehicles/{vehicle_id:int}/share",
    status_code=201,
    tags=["fleet"],
    summary="A public read-only link to the vehicle's live position",
    opt=access("operator"),
)
async def create_share(
    request: Request[Any, Any, Any],
    vehicle_id: FromPath[int],
    principal: NamedDependency[Principal],
) -> dict[str, Any]:
    ttl = expires_in(_object(await request.body(), empty_ok=True), DEFAULT_TTL, 60, MAX_TTL_S)
    _known("vehicle", vehicle_id)
    store = services(request).store
    token = secrets.token_urlsafe(24)
    now = datetime.now(UTC)
    try:
        share = await store.add_share(
            vehicle_id, share_token_hash(token), principal.username, now, now + ttl
        )
    except LookupError:
        raise ApiError(404, f"no vehicle with id {vehicle_id}") from None
    await record(store, principal, "share.create", "vehicle", vehicle_id, share_id=share.id)
    return {
        "id": share.id,
        "token": token,
        "url": f"/share/{token}",
        "expires_at": iso(share.expires_at),
    }


@get(
    "/v1/vehicles/{vehicle_id:int}/shares",
    tags=["fleet"],
    summary="The vehicle's share links (without their tokens)",
    opt=access("operator"),
)
async def list_shares(request: Request[Any, Any, Any], vehicle_id: FromPath[int]) -> dict[str, Any]:
    _known("vehicle", vehicle_id)
    store = services(request).store
    if await store.get_vehicle(vehicle_id) is None:
        raise ApiError(404, f"no vehicle with id {vehicle_id}")
    now = datetime.now(UTC)
    return {"shares": [share_json(s, now) for s in await store.list_shares(vehicle_id)]}


@delete(
    "/v1/shares/{share_id:int}",
    status_code=200,
    tags=["fleet"],
    summary="Revoke a share link",
    opt=access("operator"),
)
async def revoke_share(
    request: Request[Any, Any, Any], share_id: FromPath[int], principal: NamedDependency[Principal]
) -> dict[str, Any]:
    _known("share", share_id)
    store = services(request).store
    now = datetime.now(UTC)
    share = await store.revoke_share(share_id, now)
    if share is None:
        raise ApiError(404, f"no share with id {share_id}")
    await record(store, principal, "share.revoke", "vehicle", share.vehicle_id, share_id=share_id)
    return share_json(share, now)


@get(
    "/v1/shared/{token:str}",
    tags=["fleet"],
    summary="A shared vehicle as riders see it",
    opt=access("public"),
)
async def shared_vehicle(request: Request[Any, Any, Any], token: FromPath[str]) -> dict[str, Any]:
    store = services(request).store
    share = (
        None if len(token) > MAX_TOKEN else await store.share_by_token_hash(share_token_hash(token))
    )
    if share is None or share.revoked_at is not None:
        raise ApiError(404, "no such share link")
    if share.expires_at <= datetime.now(UTC):
        raise ApiError(410, "this share link has expired", expired_at=iso(share.expires_at))
    vehicle = await store.get_vehicle(share.vehicle_id)
    if vehicle is None:  # deleted meanwhile (its shares go with it)
        raise ApiError(404, "no such share link")
    bus: LiveBus = request.app.state.live
    placed = bus.hub.vehicles.get(vehicle.device_id) if vehicle.device_id is not None else None
    expires = iso(share.expires_at)
    if placed is None or placed.state not in RIDER_STATES:
        # No unit, no fix yet, or out of service: nothing to show on a map.
        return {"label": vehicle.label, "state": "offline", "lat": None, "lon": None,
                "expires_at": expires}  # fmt: skip
    view = public_view(placed.pos, placed.public_id, placed.state)
    return {**view, "label": vehicle.label, "expires_at": expires}
