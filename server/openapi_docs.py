"""Request bodies and parameters in the OpenAPI schema for handlers that read raw requests.

Ingest, sign-in, device registration and OsmAnd read ``request.body()``
themselves (gzip, size limits, per-fix reasons, several encodings), so
Litestar cannot infer what they accept. Without this the schema at
``/schema/openapi.json`` would show them taking nothing, and fuzzers
(schemathesis in the test suite) would never send them a body.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litestar import Litestar
from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    Parameter,
    RequestBody,
    Schema,
)

from server.settings import Settings


def _num(lo: float | None = None, hi: float | None = None, description: str = "") -> Schema:
    return Schema(type=OpenAPIType.NUMBER, minimum=lo, maximum=hi, description=description or None)


def _str(description: str = "", max_length: int | None = None) -> Schema:
    return Schema(type=OpenAPIType.STRING, description=description or None, max_length=max_length)


def _obj(properties: Mapping[str, Schema], required: list[str] | None = None) -> Schema:
    return Schema(type=OpenAPIType.OBJECT, properties=dict(properties), required=required)


def _json_body(schema: Schema, description: str) -> RequestBody:
    return RequestBody(
        content={"application/json": OpenAPIMediaType(schema=schema)},
        description=description,
        required=True,
    )


def _telemetry(settings: Settings) -> RequestBody:
    fix = _obj(
        {
            "t": Schema(
                one_of=[
                    _str("ISO 8601 with Z or an offset"),
                    _num(0, description="epoch seconds"),
                ]
            ),
            "lat": _num(-90, 90),
            "lon": _num(-180, 180),
            "alt": _num(-1000, 20000, "metres MSL"),
            "speed": _num(0, 150, "m/s"),
            "heading": _num(0, 360, "degrees true"),
            "hdop": _num(0, 100),
            "sats": Schema(type=OpenAPIType.INTEGER, minimum=0, maximum=255),
            "mode": Schema(type=OpenAPIType.INTEGER, minimum=0, maximum=3),
        },
        ["t", "lat", "lon"],
    )
    body = _obj(
        {
            "fixes": Schema(type=OpenAPIType.ARRAY, items=fix, max_items=settings.limits.max_batch),
            "agent": _obj({"version": _str(), "backlog": Schema(type=OpenAPIType.INTEGER)}),
        },
        ["fixes"],
    )
    return _json_body(body, "Protocol v1 (docs/protocol.md); gzip allowed")


_CREDENTIALS = _json_body(
    _obj({"username": _str(), "password": _str()}, ["username", "password"]), "Credentials"
)
_REFRESH = _json_body(_obj({"refresh_token": _str()}, ["refresh_token"]), "A refresh token")
_ROLE = Schema(type=OpenAPIType.STRING, enum=["admin", "operator", "viewer"])
_PASSWORD = Schema(type=OpenAPIType.STRING, min_length=8, max_length=1024)
_NEW_USER = _json_body(
    _obj(
        {"username": _str(max_length=64), "password": _PASSWORD, "role": _ROLE},
        ["username", "password", "role"],
    ),
    "The new account; the answer carries no password hash",
)
_USER_CHANGE = _json_body(
    _obj({"role": _ROLE, "password": _PASSWORD}), "role and/or password; applies at once"
)
_PASSWORD_CHANGE = _json_body(
    _obj({"current": _str(), "new": _PASSWORD}, ["current", "new"]), "Own password"
)
_NEW_DEVICE = _json_body(
    _obj({"name": _str(max_length=64), "route": _str(max_length=64)}, ["name"]),
    "The token is in the answer, shown once",
)

# What OsmAnd senders put in the query string (or a form body) — docs/protocol.md.
_OSMAND_PARAMS = [
    ("id", "the device token (typed into the app's device identifier field)"),
    ("timestamp", "epoch seconds, epoch milliseconds or ISO 8601"),
    ("lat", "degrees"),
    ("lon", "degrees"),
    ("location", "'lat,lon', instead of lat and lon"),
    ("speed", "knots"),
    ("bearing", "degrees true (also 'heading')"),
    ("altitude", "metres"),
    ("accuracy", "metres"),
    ("hdop", ""),
    ("batt", "battery, percent"),
    ("charge", "true while the phone charges"),
    ("alarm", "'sos' (Traccar Client's SOS button) raises an event"),
    ("valid", "false or 0 marks the fix as not valid"),
]


def _osmand_json() -> RequestBody:
    coords = _obj(
        {
            "latitude": _num(),
            "longitude": _num(),
            "speed": _num(description="m/s; -1 unknown"),
            "heading": _num(description="degrees; -1 unknown"),
            "altitude": _num(),
            "accuracy": _num(),
        },
        ["latitude", "longitude"],
    )
    battery = _obj(
        {
            "level": _num(description="0..1; -1 unknown"),
            "is_charging": Schema(type=OpenAPIType.BOOLEAN),
        }
    )
    # Without coords, a location is a heartbeat.
    location = _obj({"timestamp": _str("ISO 8601"), "coords": coords, "battery": battery})
    body = _obj(
        {
            "device_id": _str("the device token"),
            "location": Schema(one_of=[location, Schema(type=OpenAPIType.ARRAY, items=location)]),
        },
        ["device_id", "location"],
    )
    form = _obj({name: _str(text) for name, text in _OSMAND_PARAMS})
    return RequestBody(
        content={
            "application/json": OpenAPIMediaType(schema=body),
            "application/x-www-form-urlencoded": OpenAPIMediaType(schema=form),
        },
        description="Traccar Client 9 JSON, or the query parameters as a form",
        required=False,
    )


def _osmand_params() -> list[Parameter | Any]:
    return [
        Parameter(name=name, param_in="query", schema=_str(), description=text or None)
        for name, text in _OSMAND_PARAMS
    ]


def document(app: Litestar, settings: Settings) -> None:
    """Add the bodies and parameters Litestar cannot see to the app's OpenAPI schema.

    Builds the schema now (Litestar would on the first ``/schema`` request) and
    edits the cached object that ``/schema/openapi.json`` is rendered from.
    """
    paths = app.openapi_schema.paths or {}
    bodies = {
        ("/v1/telemetry/location", "post"): _telemetry(settings),
        ("/v1/auth/login", "post"): _CREDENTIALS,
        ("/v1/auth/refresh", "post"): _REFRESH,
        ("/v1/auth/logout", "post"): _REFRESH,
        ("/v1/auth/password", "post"): _PASSWORD_CHANGE,
        ("/v1/users", "post"): _NEW_USER,
        ("/v1/users/{user_id}", "patch"): _USER_CHANGE,
        ("/v1/devices", "post"): _NEW_DEVICE,
        ("/osmand", "post"): _osmand_json(),
        ("/", "post"): _osmand_json(),
    }
    for (path, method), body in bodies.items():
        operation = _operation(paths, path, method)
        if operation is not None and operation.request_body is None:
            operation.request_body = body
    for path in ("/osmand", "/"):
        for method in ("get", "post"):
            operation = _operation(paths, path, method)
            if operation is not None and not operation.parameters:
                operation.parameters = _osmand_params()
    # Optional to Litestar so that a missing one is our 422, not its 400.
    nearby = _operation(paths, "/v1/fleet/nearby", "get")
    for parameter in (nearby.parameters or []) if nearby is not None else []:
        if isinstance(parameter, Parameter) and parameter.name in ("lat", "lon"):
            parameter.required = True


def _operation(paths: Any, path: str, method: str) -> Operation | None:
    item = paths.get(path)
    operation = getattr(item, method, None) if item is not None else None
    return operation if isinstance(operation, Operation) else None
