"""Vehicles: the buses of the fleet, the unit installed in each, and what each serves today.

``GET /v1/vehicles`` (viewer); ``POST``, ``PATCH /v1/vehicles/{id}``,
``DELETE`` (operator). A unit moves between buses: installing it in one takes
it out of the other. Route, trip and block are GTFS ids kept as short text
(their owner checks them against the feed); setting any of them dates the
assignment with today's service date unless one is given. Every change reaches
the live views at once, through the same device message an operator's
``PATCH /v1/devices`` sends (docs/fleet.md).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from litestar import Request, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from server.access import access
from server.audit import record
from server.auth import Principal
from server.devices import MAX_BODY, MAX_ID
from server.http import ApiError, json_object, services
from server.model import VehicleRecord
from server.store.base import Conflict

MAX_LABEL = 64
MAX_PLATE = 32
MAX_GTFS_ID = 64
_TEXT = {"label": MAX_LABEL, "plate": MAX_PLATE}
_ASSIGNMENT = ("route_id", "trip_id", "block_id")
_PATCHABLE = ("label", "plate", "device_id", *_ASSIGNMENT, "service_date")


def vehicle_json(v: VehicleRecord) -> dict[str, Any]:
    return {
        "id": v.id,
        "label": v.label,
        "plate": v.plate,
        "device_id": v.device_id,
        "route_id": v.route_id,
        "trip_id": v.trip_id,
        "block_id": v.block_id,
        "service_date": v.service_date,
    }


def _body(raw: bytes) -> dict[str, Any]:
    return json_object(raw, MAX_BODY, example='{"label": "Bus 17"}')


def _short_text(value: Any, field: str, limit: int, nullable: bool) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ApiError(422, f"{field}: a non-empty string{' or null' if nullable else ''}")
    text = value.strip()
    if len(text) > limit or not text.isprintable():
        raise ApiError(422, f"{field}: at most {limit} printable characters")
    return text


def parse_changes(doc: dict[str, Any], today: date) -> dict[str, Any]:
    """A PATCH body as store changes (None clears); 422 naming the bad field."""
    unknown = sorted(set(doc) - set(_PATCHABLE))
    if unknown:
        raise ApiError(422, f"unknown fields {unknown}; expected some of {list(_PATCHABLE)}")
    if not doc:
        raise ApiError(422, f"nothing to change: give some of {list(_PATCHABLE)}")
    changes: dict[str, Any] = {}
    for field, value in doc.items():
        if field == "label":
            changes[field] = _short_text(value, field, MAX_LABEL, nullable=False)
        elif field == "plate":
            changes[field] = _short_text(value, field, MAX_PLATE, nullable=True)
        elif field in _ASSIGNMENT:
            changes[field] = _short_text(value, field, MAX_GTFS_ID, nullable=True)
        elif field == "device_id":
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID
            ):
                raise ApiError(422, "device_id: a device id, or null to remove the unit")
            changes[field] = value
        elif field == "service_date":
            try:
                changes[field] = None if value is None else date.fromisoformat(value).isoformat()
            except (TypeError, ValueError):
                raise ApiError(422, "service_date: a date like 2026-12-02, or null") from None
    if any(f in changes for f in _ASSIGNMENT) and "service_date" not in changes:
        changes["service_date"] = today.isoformat()
    return changes


def _known(vehicle_id: int) -> int:
    if not 0 < vehicle_id <= MAX_ID:
        raise ApiError(404, f"no vehicle with id {vehicle_id}")
    return vehicle_id


@get("/v1/vehicles", tags=["fleet"], summary="The fleet's vehicles", opt=access("viewer"))
async def list_vehicles(request: Request[Any, Any, Any]) -> dict[str, Any]:
    vehicles = await services(request).store.list_vehicles()
    return {"vehicles": [vehicle_json(v) for v in vehicles]}


@post(
    "/v1/vehicles", status_code=201, tags=["fleet"], summary="Add a vehicle",
    opt=access("operator"),
)  # fmt: skip
async def create_vehicle(
    request: Request[Any, Any, Any], principal: NamedDependency[Principal]
) -> dict[str, Any]:
    doc = _body(await request.body())
    unknown = sorted(set(doc) - set(_TEXT))
    if unknown:
        raise ApiError(422, f"unknown fields {unknown}; expected label and plate")
    label = _short_text(doc.get("label"), "label", MAX_LABEL, nullable=False)
    plate = _short_text(doc.get("plate"), "plate", MAX_PLATE, nullable=True)
    assert label is not None
    store = services(request).store
    try:
        vehicle = await store.add_vehicle(label, plate)
    except Conflict:
        raise ApiError(409, f"a vehicle labelled {label!r} exists already") from None
    await record(store, principal, "vehicle.create", "vehicle", vehicle.id, label=label)
    return vehicle_json(vehicle)


@patch(
    "/v1/vehicles/{vehicle_id:int}",
    tags=["fleet"],
    summary="Rename a vehicle, install a unit, assign today's route/trip/block",
    opt=access("operator"),
)
async def patch_vehicle(
    request: Request[Any, Any, Any],
    vehicle_id: FromPath[int],
    principal: NamedDependency[Principal],
) -> dict[str, Any]:
    changes = parse_changes(_body(await request.body()), datetime.now(UTC).date())
    _known(vehicle_id)
    svc = services(request)
    before = await svc.store.get_vehicle(vehicle_id)
    if before is None:
        raise ApiError(404, f"no vehicle with id {vehicle_id}")
    route_id = changes.get("route_id")
    # One list of routes (D41): the feed's and the operators' own, never free text.
    if route_id is not None and await svc.store.get_route(route_id) is None:
        raise ApiError(422, f"route_id: no route {route_id!r}; GET /v1/routes lists them")
    try:
        vehicle = await svc.store.update_vehicle(vehicle_id, changes)
    except Conflict:
        raise ApiError(409, f"a vehicle labelled {changes.get('label')!r} exists already") from None
    except LookupError:
        raise ApiError(422, f"device_id: no device with id {changes.get('device_id')}") from None
    if vehicle is None:
        raise ApiError(404, f"no vehicle with id {vehicle_id}")
    assigns = "device_id" in changes or any(f in changes for f in _ASSIGNMENT)
    action = "vehicle.assign" if assigns else "vehicle.update"
    await record(svc.store, principal, action, "vehicle", vehicle_id, **changes)
    # Both the unit taken out (if any) and the one now in it show the change.
    live = True
    for device_id in {before.device_id, vehicle.device_id} - {None}:
        assert device_id is not None
        live = await svc.publish_device(await svc.store.device_view(device_id)) and live
    return {**vehicle_json(vehicle), "live": live}


@delete(
    "/v1/vehicles/{vehicle_id:int}",
    status_code=200,
    tags=["fleet"],
    summary="Remove a vehicle (its unit stays, uninstalled)",
    opt=access("operator"),
)
async def delete_vehicle(
    request: Request[Any, Any, Any],
    vehicle_id: FromPath[int],
    principal: NamedDependency[Principal],
) -> dict[str, Any]:
    _known(vehicle_id)
    svc = services(request)
    before = await svc.store.get_vehicle(vehicle_id)
    if before is None or not await svc.store.delete_vehicle(vehicle_id):
        raise ApiError(404, f"no vehicle with id {vehicle_id}")
    await record(svc.store, principal, "vehicle.delete", "vehicle", vehicle_id, label=before.label)
    if before.device_id is not None:
        await svc.publish_device(await svc.store.device_view(before.device_id))
    return {"id": vehicle_id, "deleted": True}
