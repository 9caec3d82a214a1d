"""The OsmAnd protocol (Traccar Client, OsmAnd, many trackers), decoded. Pure: no I/O.

What senders post: one report per request as query parameters (``POST
/?id=…&timestamp=…&lat=…&lon=…&speed=…``, empty body), the same as a form body,
or the JSON variant of Traccar Client 9 (``{"device_id": …, "location": {…}}``,
where ``location`` may also be a list). ``id`` carries the device's *token*,
never its name: knowing a bus's name must not be enough to report for it.

A report without a position (no ``lat``/``lon``/``location``; in JSON no
``coords``) is a heartbeat: the phone is reachable, it just has no GPS fix to
give. ``alarm`` (Traccar Client's SOS button sends ``alarm=sos``) raises an
event, with or without a position. ``server/osmand_route.py`` takes a
Report through the shared ingest steps.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from server.validation import BodyError

KNOTS_TO_MS = 1852 / 3600
# Epoch values above this are milliseconds (1e11 s is the year 5138; 1e11 ms is 1973).
_EPOCH_MS_THRESHOLD = 1e11
# A form body has a handful of fields; parse_qsl refuses more than this.
_MAX_FORM_FIELDS = 64
_FALSE = {"false", "0", "no"}
_TRUE = {"true", "1", "yes"}
_POSITION_KEYS = frozenset({"lat", "lon", "location"})
# Alarm names as trackers send them (sos, general, lowBattery, …): a short word.
_ALARM = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")
ACCURACY_MAX_M = 100_000.0

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Reading:
    """One fix as read: ``wire`` in protocol v1 shape (judged by ``validate_fix``) and extras."""

    wire: dict[str, Any]
    accuracy: float | None = None
    battery: float | None = None
    charge: bool | None = None


Fix = Reading | ValueError


@dataclass(frozen=True, slots=True)
class Report:
    """A decoded request: who it claims to be, its fixes (or why not) and what else it says."""

    token: str | None
    fixes: list[Fix]
    # For a heartbeat (no fixes): the phone's battery (percent) and charging state.
    battery: float | None = None
    charge: bool | None = None
    # ``alarm`` and the time the report gives (its ``timestamp``; None: unreadable or absent).
    alarm: str | None = None
    t: datetime | None = None
    problems: list[str] = field(default_factory=list)  # readings dropped, with reasons

    @property
    def heartbeat(self) -> bool:
        return not self.fixes


def osmand_time(value: str) -> datetime:
    """Epoch seconds, epoch milliseconds or ISO 8601; a time without an offset is UTC."""
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is not None:
        if not math.isfinite(number) or number < 0:
            raise ValueError(f"timestamp: {text[:40]!r} is not a time")
        seconds = number / 1000 if number >= _EPOCH_MS_THRESHOLD else number
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"timestamp: {text[:40]!r} out of range") from None
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"timestamp: not epoch seconds, milliseconds or ISO 8601: {text[:40]!r}"
        ) from None
    # Traccar reads "yyyy-MM-dd HH:mm:ss" in the server's zone; ours is always UTC.
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _float(field: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{field}: not a number: {value[:40]!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{field}: must be a finite number")
    return number


def _optional(field: str, value: str | None) -> float | None:
    """A reading that senders mark unknown with a negative number (or leave empty)."""
    if value is None or value.strip() == "":
        return None
    number = _float(field, value)
    return None if number < 0 else number


def _bounded(field: str, value: float | None, hi: float) -> float | None:
    if value is not None and value > hi:
        raise ValueError(f"{field}: {value} outside 0..{hi:g}")
    return value


def _flag(field: str, value: str | None) -> bool | None:
    if value is None or value.strip() == "":
        return None
    text = value.strip().lower()
    if text in _TRUE | _FALSE:
        return text in _TRUE
    raise ValueError(f"{field}: expected true or false, got {value[:40]!r}")


def battery_from_params(params: Mapping[str, str]) -> tuple[float | None, bool | None]:
    """``batt`` (percent; ``battery`` also) and ``charge``; ValueError names the bad one."""
    batt = _optional("batt", params.get("batt", params.get("battery")))
    return _bounded("batt", batt, 100.0), _flag("charge", params.get("charge"))


def fix_from_params(params: Mapping[str, str], now: datetime) -> Reading:
    """One query/form report with a position; ValueError names the bad field.

    Speed arrives in knots. Without ``timestamp`` the fix is dated when it
    arrived, as Traccar does.
    """
    if params.get("valid", "").strip().lower() in _FALSE:
        raise ValueError("valid: the sender marked this fix as not valid")
    lat: float | None
    lon: float | None
    if "location" in params:
        parts = params["location"].split(",")
        if len(parts) != 2:
            raise ValueError("location: expected 'lat,lon'")
        lat, lon = _float("lat", parts[0]), _float("lon", parts[1])
    else:
        lat = _float("lat", params["lat"]) if "lat" in params else None
        lon = _float("lon", params["lon"]) if "lon" in params else None
    stamp = params.get("timestamp")
    t = osmand_time(stamp) if stamp and stamp.strip() else now
    speed_kn = _optional("speed", params.get("speed"))
    heading = params.get("bearing", params.get("heading"))
    alt = params.get("altitude")
    battery, charge = battery_from_params(params)
    wire = {
        "t": t.isoformat(),
        "lat": lat,
        "lon": lon,
        "speed": None if speed_kn is None else speed_kn * KNOTS_TO_MS,
        "heading": _optional("heading", heading),
        "alt": _float("alt", alt) if alt and alt.strip() else None,
        "hdop": _optional("hdop", params.get("hdop")),
    }
    accuracy = _bounded("accuracy", _optional("accuracy", params.get("accuracy")), ACCURACY_MAX_M)
    return Reading(wire, accuracy, battery, charge)


def _reading(coords: Mapping[str, Any], key: str) -> Any:
    """A JSON number; the background-geolocation SDK sends -1 for unknown."""
    value = coords.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
        return None
    return value


def _json_number(field: str, value: Any, hi: float, scale: float = 1.0) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{field}: must be a number")
    return None if value < 0 else _bounded(field, value * scale, hi)


def json_battery(location: Mapping[str, Any]) -> tuple[float | None, bool | None]:
    """``battery.level`` (0..1, as percent) and ``battery.is_charging`` of a JSON location."""
    battery = location.get("battery")
    if not isinstance(battery, dict):
        return None, None
    level = _json_number("battery.level", battery.get("level"), 100.0, scale=100.0)
    charging = battery.get("is_charging")
    return level, charging if isinstance(charging, bool) else None


def fix_from_json(location: Any, now: datetime) -> Reading:
    """One ``location`` object of the JSON variant with ``coords``. Speed is m/s here."""
    if not isinstance(location, dict):
        raise ValueError("fix must be a JSON object")
    coords = location.get("coords")
    if not isinstance(coords, dict):
        raise ValueError("lat: required (no 'coords' object)")
    if location.get("valid") is False:
        raise ValueError("valid: the sender marked this fix as not valid")
    stamp = location.get("timestamp")
    if stamp is None:
        t: Any = now.isoformat()
    elif isinstance(stamp, str):
        t = osmand_time(stamp).isoformat()
    else:
        t = stamp  # numbers and wrong types are judged by validate_fix
    wire = {
        "t": t,
        "lat": coords.get("latitude"),
        "lon": coords.get("longitude"),
        "speed": _reading(coords, "speed"),
        "heading": _reading(coords, "heading"),
        "alt": coords.get("altitude"),
    }
    accuracy = _json_number("accuracy", coords.get("accuracy"), ACCURACY_MAX_M)
    return Reading(wire, accuracy, *json_battery(location))


def _attempt(make: Callable[[T, datetime], Reading], raw: T, now: datetime) -> Fix:
    """The fix, or the ValueError saying why it cannot be read: one bad fix is no bad body."""
    try:
        return make(raw, now)
    except ValueError as exc:
        return exc


def _report_time(stamp: Any) -> datetime | None:
    if not isinstance(stamp, str) or not stamp.strip():
        return None
    try:
        return osmand_time(stamp)
    except ValueError:
        return None


def _alarm(value: Any, problems: list[str]) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and _ALARM.match(value.strip()):
        return value.strip()
    problems.append(f"alarm: expected a name like 'sos', got {str(value)[:40]!r}")
    return None


def _decode_json(body: bytes, params: Mapping[str, str], now: datetime, max_batch: int) -> Report:
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BodyError(422, f"body is not JSON: {exc}") from None
    except RecursionError:
        raise BodyError(422, "body is nested too deeply") from None
    except ValueError:
        # Python refuses to read integers of more than 4,300 digits (CVE-2020-10735).
        raise BodyError(422, "body holds a number too long to read") from None
    if not isinstance(doc, dict) or "location" not in doc:
        raise BodyError(422, "JSON body must be an object with 'location'")
    token = doc.get("device_id", params.get("id", params.get("deviceid")))
    locations = doc["location"] if isinstance(doc["location"], list) else [doc["location"]]
    if len(locations) > max_batch:
        raise BodyError(413, f"{len(locations)} locations; at most {max_batch}")
    with_coords = [loc for loc in locations if not isinstance(loc, dict) or "coords" in loc]
    problems: list[str] = []
    last = locations[-1] if locations and isinstance(locations[-1], dict) else {}
    try:
        battery, charge = json_battery(last)
    except ValueError as exc:
        problems.append(str(exc))
        battery = charge = None
    return Report(
        token if isinstance(token, str) else None,
        [_attempt(fix_from_json, loc, now) for loc in with_coords],
        battery,
        charge,
        _alarm(last.get("alarm"), problems),
        _report_time(last.get("timestamp")),
        problems,
    )


def decode(
    query: list[tuple[str, str]],
    body: bytes,
    content_type: str | None,
    now: datetime,
    max_batch: int,
) -> Report:
    """Read a request in any of the three shapes. BodyError for an unreadable one."""
    # The last value wins when a name repeats, as in Traccar's decoder.
    params = dict(query)
    stripped = body.lstrip()
    is_json = "json" in (content_type or "").lower() or stripped[:1] in (b"{", b"[")
    if stripped and is_json:
        return _decode_json(body, params, now, max_batch)
    if stripped and not (_POSITION_KEYS & params.keys()):
        try:
            form = parse_qsl(
                body.decode("utf-8"), keep_blank_values=True, max_num_fields=_MAX_FORM_FIELDS
            )
        except (UnicodeDecodeError, ValueError):
            raise BodyError(422, "body is neither JSON nor a form") from None
        params = {**params, **dict(form)}
    token = params.get("id", params.get("deviceid")) or None
    problems: list[str] = []
    alarm = _alarm(params.get("alarm"), problems)
    t = _report_time(params.get("timestamp"))
    if _POSITION_KEYS & params.keys():
        return Report(
            token, [_attempt(fix_from_params, params, now)], None, None, alarm, t, problems
        )
    try:
        battery, charge = battery_from_params(params)
    except ValueError as exc:
        problems.append(str(exc))
        battery = charge = None
    return Report(token, [], battery, charge, alarm, t, problems)


def has_token(query: Mapping[str, str]) -> bool:
    """Whether a query string names a device (so ``/`` is a report, not a browser)."""
    return bool(query.get("id") or query.get("deviceid"))
