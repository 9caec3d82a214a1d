"""Every route of the app declares who may call it, and a real server holds to it.

The route table is read from the app itself (``app.routes``), so a route added
without a rule, or with a rule that differs from ``EXPECTED``, fails here. Each
non-public route is then called over loopback: without credentials (401), with
the wrong kind of credential (401), with each role below its rule (403) and
with the role it asks for (let in).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar, get
from litestar.handlers import BaseRouteHandler, HTTPRouteHandler
from litestar.routes import HTTPRoute, WebSocketRoute
from websockets.exceptions import ConnectionClosed

from server.access import RULES, Access, role_of, rule_of
from server.app import create_app
from server.model import ROLES, Role
from tests.server.live_client import live_ws
from tests.server.running import RunningServer, make_settings

Key = tuple[str, str]  # (method, path template); "WS" for a WebSocket route

EXPECTED: dict[Key, Access] = {
    ("GET", "/health"): "public",
    ("GET", "/metrics"): "public",
    ("POST", "/v1/auth/login"): "public",
    ("POST", "/v1/auth/refresh"): "public",
    ("POST", "/v1/auth/logout"): "public",
    ("GET", "/v1/live/public/stream"): "public",
    ("GET", "/v1/live/public"): "public",
    ("GET", "/rider/{name:path}"): "public",
    ("GET", "/sw.js"): "public",
    ("GET", "/manifest.webmanifest"): "public",
    ("GET", "/vendor/leaflet/{name:str}"): "public",
    ("WS", "/ws/public"): "public",
    ("GET", "/v1/routes"): "public",
    ("GET", "/v1/routes/{route_id:str}"): "public",
    ("GET", "/v1/stops/near"): "public",
    ("GET", "/v1/stops/{stop_id:str}"): "public",
    ("GET", "/gtfs-rt/vehicle-positions"): "public",
    # GET / without a device id is the rider app: public in effect (see below).
    # The web pages and their assets (docs/console.md): public files; the data needs sign-in.
    ("GET", "/v1/map"): "public",
    ("GET", "/share/{token:str}"): "public",
    ("GET", "/console/{file_path:path}"): "public",
    ("HEAD", "/console/{file_path:path}"): "public",
    ("GET", "/monitor/{file_path:path}"): "public",
    ("HEAD", "/monitor/{file_path:path}"): "public",
    ("GET", "/share-assets/{file_path:path}"): "public",
    ("HEAD", "/share-assets/{file_path:path}"): "public",
    ("GET", "/console"): "public",
    ("GET", "/monitor"): "public",
    ("POST", "/v1/enroll"): "public",
    ("GET", "/v1/shared/{token:str}"): "public",
    ("GET", "/"): "device",
    ("POST", "/"): "device",
    ("GET", "/osmand"): "device",
    ("POST", "/osmand"): "device",
    ("POST", "/v1/telemetry/location"): "device",
    ("GET", "/v1/fleet/live"): "viewer",
    ("GET", "/v1/fleet/nearby"): "viewer",
    ("GET", "/v1/vehicles/{device_id:int}/track"): "viewer",
    ("GET", "/v1/vehicles/{device_id:int}/track.gpx"): "viewer",
    ("GET", "/v1/devices"): "viewer",
    ("GET", "/v1/devices/{device_id:int}/events"): "viewer",
    ("GET", "/v1/devices/{device_id:int}/trips"): "viewer",
    ("GET", "/v1/vehicles"): "viewer",
    ("GET", "/v1/fleet/summary"): "viewer",
    ("GET", "/v1/live/stats"): "viewer",
    ("GET", "/v1/live/stream"): "viewer",
    ("WS", "/ws"): "viewer",
    ("POST", "/v1/auth/password"): "viewer",
    ("PATCH", "/v1/devices/{device_id:int}"): "operator",
    ("POST", "/v1/routes"): "operator",
    ("PATCH", "/v1/routes/{route_id:str}"): "operator",
    ("DELETE", "/v1/routes/{route_id:str}"): "operator",
    ("GET", "/v1/gtfs-rt/problems"): "operator",
    ("POST", "/v1/devices/{device_id:int}/enrollment-code"): "operator",
    ("POST", "/v1/vehicles"): "operator",
    ("PATCH", "/v1/vehicles/{vehicle_id:int}"): "operator",
    ("DELETE", "/v1/vehicles/{vehicle_id:int}"): "operator",
    ("POST", "/v1/vehicles/{vehicle_id:int}/share"): "operator",
    ("GET", "/v1/vehicles/{vehicle_id:int}/shares"): "operator",
    ("DELETE", "/v1/shares/{share_id:int}"): "operator",
    ("POST", "/v1/devices"): "admin",
    ("POST", "/v1/devices/{device_id:int}/rotate"): "admin",
    ("POST", "/v1/devices/{device_id:int}/revoke"): "admin",
    ("GET", "/v1/audit"): "admin",
    ("GET", "/v1/users"): "admin",
    ("POST", "/v1/users"): "admin",
    ("PATCH", "/v1/users/{user_id:int}"): "admin",
    ("DELETE", "/v1/users/{user_id:int}"): "admin",
}
# Where each device route takes its token: a header (protocol v1) or the query (OsmAnd).
DEVICE_TOKEN_IN_HEADER = {"/v1/telemetry/location"}
# Operator routes that also take the access token as ?token= (browsers' EventSource).
STREAMS = {"/v1/live/stream"}
# No device has this id: calls that get past the guard end in a 404, changing nothing.
ABSENT_ID = "999999"


def is_schema(path: str) -> bool:
    return path == "/schema" or path.startswith("/schema/")


def is_generated(handler: BaseRouteHandler) -> bool:
    """Litestar's OPTIONS handler, made for every path (the guard lets it through)."""
    return (
        isinstance(handler, HTTPRouteHandler)
        and handler.http_methods == {"OPTIONS"}
        and handler.fn.__module__.startswith("litestar.")
    )


def route_table(app: Litestar) -> dict[Key, Access | None]:
    """Every (method, path) the app answers, with the rule its handler declares."""
    table: dict[Key, Access | None] = {}
    for route in app.routes:
        handlers: list[tuple[str, BaseRouteHandler]] = []
        if isinstance(route, HTTPRoute):
            handlers = [(str(m), h) for m, (h, _) in route.route_handler_map.items()]
        elif isinstance(route, WebSocketRoute):
            handlers = [("WS", route.route_handler)]
        else:
            raise AssertionError(f"a kind of route this test does not know: {route!r}")
        for method, handler in handlers:
            if method == "OPTIONS" and is_generated(handler):
                continue  # Litestar's own "which methods" answer (204 + Allow)
            table[(method, route.path)] = rule_of(handler)
    return table


def concrete(path: str) -> str:
    path = re.sub(r"\{\w+:int\}", ABSENT_ID, path)
    return re.sub(r"\{\w+(:\w+)?\}", "x", path)


@get("/v1/undeclared", sync_to_thread=False)
def undeclared() -> dict[str, str]:
    return {"secret": "anyone may read this"}


def test_every_route_declares_its_rule(tmp_path: Path) -> None:
    table = route_table(create_app(make_settings(tmp_path)))
    assert [key for key, rule in table.items() if rule is None] == []
    assert {k: r for k, r in table.items() if is_schema(k[1])}, "the schema routes are listed"
    assert all(r == "public" for k, r in table.items() if is_schema(k[1]))
    assert {k: r for k, r in table.items() if not is_schema(k[1])} == EXPECTED
    assert set(EXPECTED.values()) == set(RULES)


def test_a_route_without_a_rule_is_found_and_refused(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path / "walked"))
    app.register(undeclared)
    assert route_table(app)[("GET", "/v1/undeclared")] is None
    # Should one reach a server anyway, the guard refuses it: it fails closed.
    running = RunningServer(make_settings(tmp_path / "served"), extra_handlers=[undeclared])
    running.start()
    try:
        r = httpx.get(f"{running.url}/v1/undeclared")
        assert r.status_code == 500 and r.json() == {"error": "route declares no access rule"}
    finally:
        running.stop()


def _call(
    server: RunningServer,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """Status, headers and JSON body (None if not JSON); streams are left unread."""
    with httpx.stream(
        method, f"{server.url}{path}", headers=headers, params=params, timeout=30
    ) as r:
        body: Any = None
        # A HEAD answer (the static files') has a JSON content type but never a body.
        if method != "HEAD" and r.headers.get("content-type", "").startswith("application/json"):
            r.read()
            body = r.json()
        return r.status_code, dict(r.headers), body


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _role_token(server: RunningServer, role: Role) -> str:
    return server.operator(role)["Authorization"].removeprefix("Bearer ")


def check_device_route(
    server: RunningServer, method: str, path: str, device_token: str, problems: list[str]
) -> None:
    def send(token: str | None) -> tuple[int, dict[str, str], Any]:
        if path in DEVICE_TOKEN_IN_HEADER:
            return _call(server, method, path, headers=_bearer(token) if token else None)
        return _call(server, method, path, params={"id": token} if token else None)

    status, headers, body = send(None)
    if (method, path) == ("GET", "/"):
        # A browser's GET / names no device: the landing page, not a refusal.
        if status != 200 or not headers.get("content-type", "").startswith("text/html"):
            problems.append(f"{method} {path} without a token: {status}, not the landing page")
    elif status != 401 or headers.get("www-authenticate") != "Bearer":
        problems.append(f"{method} {path} without a token: {status} {body}, not 401")
    elif not str((body or {}).get("error", "")).startswith("missing device token"):
        problems.append(f"{method} {path} without a token: {body}")
    # An operator's access token is not a device credential.
    status, _, body = send(_role_token(server, "admin"))
    if status != 401:
        problems.append(f"{method} {path} with an operator's token: {status} {body}, not 401")
    status, _, body = send(device_token)
    if status in (401, 403):
        problems.append(f"{method} {path} with a device token: {status} {body}")


def check_operator_route(
    server: RunningServer,
    method: str,
    path: str,
    role: Role,
    device_token: str,
    problems: list[str],
) -> None:
    status, headers, body = _call(server, method, path)
    missing = "missing access token" if path in STREAMS else "missing bearer token"
    if (status, headers.get("www-authenticate"), body) != (401, "Bearer", {"error": missing}):
        problems.append(f"{method} {path} without a token: {status} {body}, not 401")
    # A device's token is not an operator credential.
    status, _, body = _call(server, method, path, headers=_bearer(device_token))
    if status != 401:
        problems.append(f"{method} {path} with a device token: {status} {body}, not 401")
    for lower in ROLES[ROLES.index(role) + 1 :]:
        status, _, body = _call(server, method, path, headers=server.operator(lower))
        wanted = f"needs role {role} or higher; you are {lower}"
        if (status, body) != (403, {"error": wanted}):
            problems.append(f"{method} {path} as {lower}: {status} {body}, not 403")
    status, _, body = _call(server, method, path, headers=server.operator(role))
    if status in (401, 403):
        problems.append(f"{method} {path} as {role}: {status} {body}, not let in")


def check_websocket(
    server: RunningServer, path: str, rule: Access, device_token: str, problems: list[str]
) -> None:
    """Refusals are a close code after accepting (D17); the rule's role gets its snapshot."""
    role = role_of(rule)

    def outcome(token: str | None) -> str:
        with live_ws(server.url, path, token=token) as ws:
            try:
                return str(ws.snapshot()["type"])
            except ConnectionClosed as closed:
                return f"closed {closed.rcvd.code if closed.rcvd else None}"

    if role is None:
        if outcome(None) != "snapshot":
            problems.append(f"WS {path} without a token: {outcome(None)}, not a snapshot")
        return
    for token, want in [
        (None, "closed 4401"),
        (device_token, "closed 4401"),
        *[(_role_token(server, lower), "closed 4403") for lower in ROLES[ROLES.index(role) + 1 :]],
        (_role_token(server, role), "snapshot"),
    ]:
        got = outcome(token)
        if got != want:
            problems.append(f"WS {path} with {str(token)[:12]!r}: {got}, not {want}")


def test_every_route_refuses_what_its_rule_refuses(
    server_factory: Callable[..., RunningServer],
) -> None:
    server = server_factory()
    assert server.app is not None
    table = route_table(server.app)
    _, device_token = server.add_device("bus-1")
    problems: list[str] = []
    checked = 0
    for (method, template), rule in sorted(table.items()):
        path = concrete(template)
        if rule is None:
            problems.append(f"{method} {template} declares no rule")
        elif method == "WS":
            check_websocket(server, path, rule, device_token, problems)
        elif rule == "public":
            status, _, body = _call(server, method, path)
            if status in (401, 403):
                problems.append(f"{method} {template} is public but answered {status} {body}")
        elif rule == "device":
            check_device_route(server, method, path, device_token, problems)
        else:
            role = role_of(rule)
            assert role is not None
            check_operator_route(server, method, path, role, device_token, problems)
        checked += 1
    assert problems == []
    assert checked == len(table) >= len(EXPECTED)


@pytest.mark.parametrize("rule", RULES)
def test_rules_and_roles_agree(rule: Access) -> None:
    role = role_of(rule)
    assert (role is None) == (rule in ("public", "device"))
    assert role is None or role in ROLES
