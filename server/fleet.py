"""Reads for operators: ``GET /v1/fleet/live``.

What a vehicle's state and its view are lives in ``server/vehicle.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Request, get

from server.access import access
from server.http import services
from server.model import DeviceSeen, LivePosition
from server.vehicle import iso, operator_view, vehicle_state


@get("/v1/fleet/live", tags=["fleet"], summary="Where every vehicle is now", opt=access("viewer"))
async def fleet_live(request: Request[Any, Any, Any]) -> dict[str, Any]:
    svc = services(request)
    positions = await svc.store.live_positions()
    seen = await svc.store.seen_devices()
    now = datetime.now(UTC)
    limit = svc.settings.live.offline_after_s
    placed = {p.device_id for p in positions}
    # A device heard from that never sent a fix is listed too, without a position.
    unplaced = [s for s in seen if s.device_id not in placed]
    listed: list[LivePosition | DeviceSeen] = [*positions, *unplaced]
    vehicles = [operator_view(v, vehicle_state(v, now, limit)) for v in listed]
    vehicles.sort(key=lambda v: int(v["device_id"]))
    return {"vehicles": vehicles, "generated_at": iso(now)}
