"""Reads for operators: ``GET /v1/fleet/live`` and friends.

A vehicle's state: ``online`` (a fix arrived within OFFLINE_AFTER), ``no_gps``
(no recent fix, but the device was heard from within OFFLINE_AFTER: a phone's
heartbeat, or a report whose fix was refused), ``offline``, or
``out_of_service`` (set by an operator).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Request, get

from server.http import current_user, services, store_unavailable
from server.model import DeviceSeen, LivePosition, Seen
from server.store.base import StoreUnavailable


def _fresh(at: datetime, now: datetime, offline_after_s: int) -> bool:
    return (now - at).total_seconds() <= offline_after_s


def heard_state(received_at: datetime | None, seen: Seen | None, now: datetime, limit: int) -> str:
    """online / no_gps / offline from the last fix's arrival and the last heartbeat."""
    if received_at is not None and _fresh(received_at, now, limit):
        return "online"
    if seen is not None and _fresh(seen.at, now, limit):
        return "no_gps"
    return "offline"


def vehicle_state(pos: LivePosition, now: datetime, offline_after_s: int) -> str:
    if not pos.in_service:
        return "out_of_service"
    return heard_state(pos.received_at, pos.seen, now, offline_after_s)


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def vehicle_json(pos: LivePosition, now: datetime, offline_after_s: int) -> dict[str, Any]:
    return vehicle_view(pos, vehicle_state(pos, now, offline_after_s))


def _power(pos: LivePosition) -> tuple[float | None, bool | None]:
    """Battery and charging from whichever is newer: the last fix or the last heartbeat."""
    seen = pos.seen
    newer = seen is not None and seen.at > pos.received_at
    if newer and seen is not None and (seen.battery is not None or seen.charge is not None):
        return seen.battery, seen.charge
    return pos.fix.battery, pos.fix.charge


def vehicle_view(pos: LivePosition, state: str) -> dict[str, Any]:
    fix = pos.fix
    battery, charge = _power(pos)
    seen_at = pos.seen.at if pos.seen is not None else pos.received_at
    return {
        "device_id": pos.device_id,
        "name": pos.name,
        "route": pos.route,
        "lat": fix.lat,
        "lon": fix.lon,
        "t": iso(fix.t),
        "speed": fix.speed,
        "heading": fix.heading,
        "accuracy": fix.accuracy,
        "battery": battery,
        "charge": charge,
        "received_at": iso(pos.received_at),
        "last_seen": iso(max(seen_at, pos.received_at)),
        "state": state,
    }


def unplaced_json(device: DeviceSeen, now: datetime, offline_after_s: int) -> dict[str, Any]:
    """A device heard from (heartbeats) that has never sent a fix: no position to show."""
    seen = device.seen
    state = heard_state(None, seen, now, offline_after_s) if device.in_service else "out_of_service"
    return {
        "device_id": device.device_id,
        "name": device.name,
        "route": device.route,
        "lat": None,
        "lon": None,
        "t": None,
        "speed": None,
        "heading": None,
        "accuracy": None,
        "battery": seen.battery,
        "charge": seen.charge,
        "received_at": None,
        "last_seen": iso(seen.at),
        "state": state,
    }


@get("/v1/fleet/live", tags=["fleet"], summary="Where every vehicle is now")
async def fleet_live(request: Request[Any, Any, Any]) -> dict[str, Any]:
    await current_user(request, "viewer")
    svc = services(request)
    try:
        positions = await svc.store.live_positions()
        seen = await svc.store.seen_devices()
    except StoreUnavailable:
        raise store_unavailable() from None
    now = datetime.now(UTC)
    limit = svc.settings.live.offline_after_s
    placed = {p.device_id for p in positions}
    vehicles = [vehicle_json(p, now, limit) for p in positions]
    vehicles += [unplaced_json(s, now, limit) for s in seen if s.device_id not in placed]
    vehicles.sort(key=lambda v: int(v["device_id"]))
    return {"vehicles": vehicles, "generated_at": iso(now)}
