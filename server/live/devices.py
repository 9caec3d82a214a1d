"""``PATCH /v1/devices/{id}`` (service and route) and ``GET /v1/live/stats``.

Marking a bus out of service is a live event: riders' screens must drop it at
once, not when it next reports, so the change goes on the live bus as well as
into the store.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, get, patch
from litestar.di import NamedDependency
from litestar.params import FromPath

from server.access import access
from server.audit import record
from server.auth import Principal
from server.devices import MAX_BODY, MAX_ID, device_json
from server.http import ApiError, services
from server.live.bus import LiveBus
from server.live.filters import MAX_ROUTE_LEN

log = logging.getLogger(__name__)

_FIELDS = frozenset({"in_service", "route", "offline_after"})
# A week: a longer silence is not "offline" in any sense worth a threshold.
MAX_OFFLINE_AFTER_S = 7 * 86400


def parse_device_patch(raw: bytes) -> dict[str, Any]:
    """The fields to change; raises ApiError(413/422) naming what is wrong."""
    if len(raw) > MAX_BODY:
        raise ApiError(413, f"body larger than {MAX_BODY} bytes")
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise ApiError(422, "body is not JSON") from None
    except RecursionError:
        raise ApiError(422, "body is nested too deeply") from None
    if not isinstance(body, dict):
        raise ApiError(422, "body must be a JSON object")
    # A typo such as "inService" must not be a silent no-op that answers 200.
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise ApiError(
            422, f"unknown fields {unknown}; expected in_service, route and/or offline_after"
        )
    if not body:
        raise ApiError(422, "nothing to change: give in_service, route and/or offline_after")
    if "offline_after" in body:
        value = body["offline_after"]
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not 1 <= value <= MAX_OFFLINE_AFTER_S
        ):
            raise ApiError(
                422,
                f"offline_after must be seconds, 1..{MAX_OFFLINE_AFTER_S}, or null for the"
                " server's OFFLINE_AFTER",
            )
    if "in_service" in body and not isinstance(body["in_service"], bool):
        raise ApiError(422, "in_service must be true or false")
    if "route" in body:
        route = body["route"]
        if (
            not isinstance(route, str)
            or not route.strip()
            or len(route.strip()) > MAX_ROUTE_LEN
            or not route.isprintable()
        ):
            # The store keeps the old route when given none, so clearing is not offered.
            raise ApiError(422, f"route must be a name of 1..{MAX_ROUTE_LEN} characters")
        body["route"] = route.strip()
    return body


@patch(
    "/v1/devices/{device_id:int}",
    tags=["devices"],
    summary="Mark a vehicle in or out of service, or move it to another route",
    opt=access("operator"),
)
async def patch_device(
    request: Request[Any, Any, Any], device_id: FromPath[int], principal: NamedDependency[Principal]
) -> dict[str, Any]:
    changes = parse_device_patch(await request.body())
    if not 0 < device_id <= MAX_ID:  # beyond 64 bits the driver fails rather than finding none
        raise ApiError(404, f"no device with id {device_id}")
    svc = services(request)
    device = await svc.store.update_device(
        device_id, in_service=changes.get("in_service"), route=changes.get("route")
    )
    if device is not None and "offline_after" in changes:
        device = await svc.store.set_offline_after(device_id, changes["offline_after"])
    if device is None:
        raise ApiError(404, f"no device with id {device_id}")
    log.info("device %d changed by %s: %s", device.id, principal.username, changes)
    await record(svc.store, principal, "device.update", "device", device.id, **changes)
    live = await svc.publish_device(await svc.store.device_view(device.id))
    return {
        **device_json(device),
        # False when the change could not be put on the live bus (Redis down):
        # screens then see it with the next fix, or when the bus comes back.
        "live": live,
    }


@get(
    "/v1/live/stats",
    tags=["live"],
    summary="Live bus and stream counters of this process",
    opt=access("viewer"),
)
async def live_stats(request: Request[Any, Any, Any]) -> dict[str, Any]:
    bus: LiveBus = request.app.state.live
    return bus.stats()
