"""Reads for operators: ``GET /v1/fleet/live`` and the wallboard's ``GET /v1/fleet/summary``.

What a vehicle's state and its view are lives in ``server/vehicle.py``; the
summary's figures in ``server/fleet_summary.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from litestar import Request, get

from server.access import access
from server.fleet_summary import summarize
from server.http import services
from server.model import DeviceSeen, LivePosition
from server.store.base import Store
from server.vehicle import iso, last_seen, operator_view, vehicle_state


async def heard_vehicles(store: Store) -> list[LivePosition | DeviceSeen]:
    """Every device heard from: placed ones, and those that never sent a fix (no position)."""
    positions = await store.live_positions()
    seen = await store.seen_devices()
    placed = {p.device_id for p in positions}
    unplaced = [s for s in seen if s.device_id not in placed]
    return [*positions, *unplaced]


@get("/v1/fleet/live", tags=["fleet"], summary="Where every vehicle is now", opt=access("viewer"))
async def fleet_live(request: Request[Any, Any, Any]) -> dict[str, Any]:
    svc = services(request)
    listed = await heard_vehicles(svc.store)
    now = datetime.now(UTC)
    limit = svc.settings.live.offline_after_s
    vehicles = [operator_view(v, vehicle_state(v, now, limit), limit) for v in listed]
    vehicles.sort(key=lambda v: int(v["device_id"]))
    return {"vehicles": vehicles, "generated_at": iso(now)}


@get(
    "/v1/fleet/summary",
    tags=["fleet"],
    summary="Wallboard figures: states, fixes per minute, backlogs, auth errors, the alert",
    opt=access("viewer"),
)
async def fleet_summary(request: Request[Any, Any, Any]) -> dict[str, Any]:
    svc = services(request)
    now = datetime.now(UTC)
    limit = svc.settings.live.offline_after_s
    listed = await heard_vehicles(svc.store)
    states = {v.device_id: vehicle_state(v, now, limit) for v in listed}
    heard = {v.device_id: last_seen(v) for v in listed}
    fixes = await svc.store.fixes_between(now - timedelta(minutes=1), now)
    summary = summarize(await svc.store.list_devices(), states, heard, fixes)
    return {**summary, "generated_at": iso(now)}
