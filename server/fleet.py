"""Reads for operators: ``GET /v1/fleet/live`` and friends."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Request, get

from server.http import current_user, services, store_unavailable
from server.model import LivePosition
from server.store.base import StoreUnavailable


def vehicle_state(pos: LivePosition, now: datetime, offline_after_s: int) -> str:
    if not pos.in_service:
        return "out_of_service"
    age = (now - pos.received_at).total_seconds()
    return "online" if age <= offline_after_s else "offline"


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def vehicle_json(pos: LivePosition, now: datetime, offline_after_s: int) -> dict[str, Any]:
    return vehicle_view(pos, vehicle_state(pos, now, offline_after_s))


def vehicle_view(pos: LivePosition, state: str) -> dict[str, Any]:
    fix = pos.fix
    return {
        "device_id": pos.device_id,
        "name": pos.name,
        "route": pos.route,
        "lat": fix.lat,
        "lon": fix.lon,
        "t": iso(fix.t),
        "speed": fix.speed,
        "heading": fix.heading,
        "received_at": iso(pos.received_at),
        "state": state,
    }


@get("/v1/fleet/live", tags=["fleet"], summary="Where every vehicle is now")
async def fleet_live(request: Request[Any, Any, Any]) -> dict[str, Any]:
    await current_user(request, "viewer")
    svc = services(request)
    try:
        positions = await svc.store.live_positions()
    except StoreUnavailable:
        raise store_unavailable() from None
    now = datetime.now(UTC)
    return {
        "vehicles": [vehicle_json(p, now, svc.settings.offline_after_s) for p in positions],
        "generated_at": iso(now),
    }
