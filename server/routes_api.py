"""The one list of routes: ``GET /v1/routes`` for everyone, operators' own routes managed here.

Routes come from the GTFS import (source ``gtfs``: replaced by the next
import, so not editable here, answered 409) or from operators (source
``operator``: a short name and a colour for a fleet without a feed; kept
across imports). A device's ``route`` names one of them by ``route_id``.
"""

from __future__ import annotations

import re
from typing import Any

from litestar import Request, Response, delete, get, patch, post
from litestar.di import NamedDependency

from server.access import access
from server.audit import record
from server.auth import Principal
from server.gtfs.model import Route
from server.http import ApiError, json_object, services
from server.store.base import Conflict, Transit
from server.store.gtfs_sql import ROUTE_FIELDS
from server.transit import RouteId, route_json

MAX_BODY = 4096
MAX_TEXT = 64
_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_COLOR = re.compile(r"^#?[0-9A-Fa-f]{6}$")


def _body(raw: bytes) -> dict[str, Any]:
    doc = json_object(raw, MAX_BODY, example='{"short_name": "7"}')
    unknown = sorted(set(doc) - {"route_id", *ROUTE_FIELDS})
    if unknown:
        raise ApiError(422, f"{unknown[0]}: unknown field")
    return doc


def _field(doc: dict[str, Any], name: str) -> Any:
    value = doc[name]
    if value is None:
        return None
    if name == "type":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1702:
            raise ApiError(422, "type: must be a GTFS route_type (3 is bus)")
        return value
    if not isinstance(value, str) or not value.strip() or not value.strip().isprintable():
        raise ApiError(422, f"{name}: must be a non-empty string")
    text = value.strip()
    if name in ("color", "text_color"):
        if not _COLOR.match(text):
            raise ApiError(422, f"{name}: must be six hex digits like 'E4002B'")
        return text.lstrip("#").upper()
    if len(text) > MAX_TEXT:
        raise ApiError(422, f"{name}: at most {MAX_TEXT} characters")
    return text


def parse_changes(doc: dict[str, Any]) -> dict[str, Any]:
    return {name: _field(doc, name) for name in ROUTE_FIELDS if name in doc}


async def _own(store: Transit, route_id: str) -> Route:
    route = await store.get_route(route_id)
    if route is None:
        raise ApiError(404, f"no route {route_id!r}")
    if route.source != "operator":
        raise ApiError(409, f"route {route_id!r} comes from the GTFS feed: change the feed")
    return route


@get("/v1/routes", tags=["transit"], summary="Every route", opt=access("public"))
async def list_routes(request: Request[Any, Any, Any]) -> list[dict[str, Any]]:
    return [route_json(r) for r in await services(request).store.list_routes()]


@post("/v1/routes", tags=["transit"], summary="Add an operator's route", opt=access("operator"))
async def add_route(
    request: Request[Any, Any, Any], principal: NamedDependency[Principal]
) -> Response[dict[str, Any]]:
    doc = _body(await request.body())
    route_id = doc.get("route_id")
    if not isinstance(route_id, str) or not _ID.match(route_id):
        raise ApiError(422, "route_id: 1 to 64 letters, digits or . _ : -")
    changes = parse_changes(doc)
    if not changes.get("short_name") and not changes.get("long_name"):
        raise ApiError(422, "short_name: a short_name or a long_name is required")
    route = Route(route_id, source="operator", **changes)
    store = services(request).store
    try:
        made = await store.add_route(route)
    except Conflict:
        raise ApiError(409, f"route {route_id!r} exists already") from None
    await record(store, principal, "route.create", "route", route_id, **changes)
    return Response(route_json(made), status_code=201)


@patch("/v1/routes/{route_id:str}", tags=["transit"], summary="Change an operator's route",
       opt=access("operator"))  # fmt: skip
async def update_route(
    request: Request[Any, Any, Any], route_id: RouteId, principal: NamedDependency[Principal]
) -> dict[str, Any]:
    doc = _body(await request.body())
    if "route_id" in doc:
        raise ApiError(422, "route_id: cannot be changed")
    store = services(request).store
    route = await _own(store, route_id)
    changes = parse_changes(doc)
    after = {**{n: getattr(route, n) for n in ROUTE_FIELDS}, **changes}
    if not after["short_name"] and not after["long_name"]:
        raise ApiError(422, "short_name: a short_name or a long_name is required")
    changed = await store.update_route(route_id, changes)
    if changed is None:
        raise ApiError(404, f"no route {route_id!r}")
    await record(store, principal, "route.update", "route", route_id, **changes)
    return route_json(changed)


@delete("/v1/routes/{route_id:str}", tags=["transit"], summary="Remove an operator's route",
        opt=access("operator"), status_code=204)  # fmt: skip
async def delete_route(
    request: Request[Any, Any, Any], route_id: RouteId, principal: NamedDependency[Principal]
) -> None:
    store = services(request).store
    route = await _own(store, route_id)
    if not await store.delete_route(route_id):
        raise ApiError(404, f"no route {route_id!r}")
    await record(store, principal, "route.delete", "route", route_id, short_name=route.short_name)


ROUTES = [list_routes, add_route, update_route, delete_route]
