"""How a live position looks on the bus between processes and to operators' streams. No I/O.

Operators see what ``/v1/fleet/live`` shows (``operator_view`` and
``vehicle_state`` of ``server/vehicle.py``) plus ``in_service``. Riders see
``public_view`` (``server/vehicle.py``) under the opaque id made here: no
device ids, no tokens.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace
from datetime import datetime
from typing import Any

import msgspec

from server.model import DeviceView, FixIn, FleetInfo, LivePosition, Seen
from server.vehicle import VehicleState, iso, operator_view, vehicle_state

WIRE_VERSION = 1

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class WireError(ValueError):
    """A message on the live bus this process cannot read (another version, or garbage)."""


def dumps(obj: Any) -> str:
    return _encode(obj).decode()


def public_id(key: bytes, device_id: int) -> str:
    """A stable id riders may see that does not reveal the device id.

    Keyed with the installation's own key, kept in its database: every process
    of one deployment agrees on it, it outlives a JWT_SECRET rotation, and
    nobody without the key can map an id back to a device.
    """
    digest = hmac.new(key, b"vehicle:%d" % device_id, hashlib.sha256).hexdigest()
    return "v" + digest[:16]


def stream_operator_view(
    pos: LivePosition, state: VehicleState, offline_after_s: int | None = None
) -> dict[str, Any]:
    """A vehicle on an operator's stream: what ``/v1/fleet/live`` shows, plus ``in_service``."""
    view = operator_view(pos, state, offline_after_s)
    view["in_service"] = pos.in_service
    return view


# -- the live bus between processes -------------------------------------------------------


def encode_positions(positions: list[LivePosition], now: datetime, offline_after_s: int) -> bytes:
    items = []
    for pos in positions:
        item = stream_operator_view(pos, vehicle_state(pos, now, offline_after_s))
        item["alt"] = pos.fix.alt
        item["fleet"] = fleet_to_wire(pos.fleet)  # the device's own values, not the defaults
        # The view shows the newer of the fix's and the heartbeat's battery; the
        # wire carries the fix's own (the heartbeat travels on its own).
        item["battery"], item["charge"] = pos.fix.battery, pos.fix.charge
        items.append(item)
    return _encode({"v": WIRE_VERSION, "positions": items})


def fleet_to_wire(fleet: FleetInfo) -> dict[str, Any]:
    error = fleet.auth_error_at
    return {
        "vehicle_id": fleet.vehicle_id,
        "vehicle": fleet.vehicle,
        "route_id": fleet.route_id,
        "trip_id": fleet.trip_id,
        "offline_after_s": fleet.offline_after_s,
        "agent_version": fleet.agent_version,
        "backlog": fleet.backlog,
        "auth_error_at": None if error is None else iso(error),
    }


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def fleet_from_wire(item: Any) -> FleetInfo:
    """The ``fleet`` object of a wire position or device; none at all: nothing known."""
    if item is None:
        return FleetInfo()
    if not isinstance(item, dict):
        raise WireError("fleet is not an object")
    error = item.get("auth_error_at")
    try:
        return FleetInfo(
            vehicle_id=_opt_int(item.get("vehicle_id")),
            vehicle=_opt_str(item.get("vehicle")),
            route_id=_opt_str(item.get("route_id")),
            trip_id=_opt_str(item.get("trip_id")),
            offline_after_s=_opt_int(item.get("offline_after_s")),
            agent_version=_opt_str(item.get("agent_version")),
            backlog=_opt_int(item.get("backlog")),
            auth_error_at=None if error is None else _time(error),
        )
    except (TypeError, ValueError) as exc:
        raise WireError(f"bad fleet: {exc!r}") from None


def encode_device(view: DeviceView, at: datetime) -> bytes:
    return _encode(
        {
            "v": WIRE_VERSION,
            "device": {
                "id": view.device_id,
                "name": view.name,
                "in_service": view.in_service,
                "route": view.route,
                "fleet": fleet_to_wire(view.fleet),
            },
            "at": iso(at),
        }
    )


def encode_seen(device_id: int, seen: Seen) -> bytes:
    return _encode(
        {
            "v": WIRE_VERSION,
            "seen": {
                "device_id": device_id,
                "at": iso(seen.at),
                "battery": seen.battery,
                "charge": seen.charge,
            },
        }
    )


def encode_event(event: dict[str, Any]) -> bytes:
    """``event`` as ``server.events.event_json`` renders it (it has the device's name)."""
    return _encode({"v": WIRE_VERSION, "event": event})


def event_frame(event: dict[str, Any], now: datetime) -> str:
    return dumps({"type": "event", "at": iso(now), "event": event})


def encode_signout(user_id: int | None, family: str | None, reason: str) -> bytes:
    """An operator's sign-in ended or changed: every process closes their streams."""
    return _encode(
        {"v": WIRE_VERSION, "signout": {"user_id": user_id, "family": family, "reason": reason}}
    )


def signout_from_wire(message: dict[str, Any]) -> tuple[int | None, str | None, str]:
    item = message["signout"]
    if not isinstance(item, dict):
        raise WireError("bad signout: not an object")
    user_id, family = item.get("user_id"), item.get("family")
    if not (user_id is None or isinstance(user_id, int)) or not (
        family is None or isinstance(family, str)
    ):
        raise WireError("bad signout: user_id or family")
    return user_id, family, str(item.get("reason", "signed out"))


def seen_from_wire(message: dict[str, Any]) -> tuple[int, Seen]:
    try:
        item = message["seen"]
        battery, charge = item.get("battery"), item.get("charge")
        seen = Seen(_time(item["at"]), _float(battery), None if charge is None else bool(charge))
        return int(item["device_id"]), seen
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise WireError(f"bad heartbeat: {exc!r}") from None


def event_from_wire(message: dict[str, Any]) -> dict[str, Any]:
    event = message["event"]
    if not isinstance(event, dict) or not isinstance(event.get("id"), int):
        raise WireError("bad event: no id")
    return event


def _time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise WireError("time is not a string")
    return datetime.fromisoformat(value)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def decode_message(data: bytes) -> dict[str, Any]:
    try:
        message = _decode(data)
    except msgspec.DecodeError as exc:
        raise WireError(f"not JSON: {exc}") from None
    if not isinstance(message, dict) or message.get("v") != WIRE_VERSION:
        raise WireError("unknown message version")
    return message


def position_from_wire(item: dict[str, Any]) -> LivePosition:
    try:
        fix = FixIn(
            t=_time(item["t"]),
            lat=float(item["lat"]),
            lon=float(item["lon"]),
            alt=_float(item.get("alt")),
            speed=_float(item.get("speed")),
            heading=_float(item.get("heading")),
            accuracy=_float(item.get("accuracy")),
            battery=_float(item.get("battery")),
            charge=None if item.get("charge") is None else bool(item["charge"]),
        )
        return LivePosition(
            device_id=int(item["device_id"]),
            name=str(item["name"]),
            fix=fix,
            received_at=_time(item["received_at"]),
            route=item.get("route"),
            in_service=bool(item.get("in_service", True)),
            fleet=fleet_from_wire(item.get("fleet")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise WireError(f"bad position: {exc!r}") from None


def device_from_wire(message: dict[str, Any]) -> tuple[int, dict[str, Any], datetime]:
    """(device id, attributes to apply to its live position, when it changed)."""
    try:
        device = message["device"]
        attrs = {
            "name": str(device["name"]),
            "in_service": bool(device["in_service"]),
            "route": device.get("route"),
            "fleet": fleet_from_wire(device.get("fleet")),
        }
        return int(device["id"]), attrs, _time(message["at"])
    except (KeyError, TypeError, ValueError) as exc:
        raise WireError(f"bad device event: {exc!r}") from None


def with_attrs(pos: LivePosition, attrs: dict[str, Any]) -> LivePosition:
    return replace(pos, **attrs)
