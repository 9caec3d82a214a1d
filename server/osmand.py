"""``/osmand``: the OsmAnd protocol, so a phone running Traccar Client can be a bus unit.

What senders post (Traccar Client, OsmAnd, many trackers): one fix per request
as query parameters (``POST /osmand?id=…&timestamp=…&lat=…&lon=…&speed=…``,
empty body), the same as a form body, or the JSON variant of Traccar Client 9
(``{"device_id": …, "location": {"timestamp": ISO, "coords": {…}}}``, where
``location`` may also be a list). ``id`` carries the device's *token*, never its
name: knowing a bus's name must not be enough to report for it.

Answers follow from how these clients behave: anything but a 200 makes them
keep the fix and resend it (oldest first) every 30 s, forever. So a fix that
can be read but fails validation is answered 200 with the reason, as in
protocol v1; only a wrong token (401), a full rate limit (429), an unreadable
request (4xx) or a store that is away (503) are refused.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from litestar import Request, Response, route

from server.http import ApiError, services, store_unavailable
from server.ingest import authenticate_device, limit_headers, limits
from server.metrics import record_fixes
from server.model import FixIn
from server.store.base import StoreUnavailable
from server.validation import BodyError, validate_fix

KNOTS_TO_MS = 1852 / 3600
# Epoch values above this are milliseconds (1e11 s is the year 5138; 1e11 ms is 1973).
_EPOCH_MS_THRESHOLD = 1e11
# A form body has a handful of fields; parse_qsl refuses more than this.
_MAX_FORM_FIELDS = 64
_FALSE = {"false", "0", "no"}

T = TypeVar("T")
Fix = dict[str, Any] | ValueError


@dataclass(frozen=True, slots=True)
class Report:
    """A decoded request: who it claims to be and its fixes in v1 shape (or why not)."""

    token: str | None
    fixes: list[Fix]


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
        return float(value)
    except ValueError:
        raise ValueError(f"{field}: not a number: {value[:40]!r}") from None


def _optional(field: str, value: str | None) -> float | None:
    """A reading that senders mark unknown with a negative number (or leave empty)."""
    if value is None or value.strip() == "":
        return None
    number = _float(field, value)
    return None if number < 0 else number


def fix_from_params(params: Mapping[str, str], now: datetime) -> dict[str, Any]:
    """One query/form report as a protocol v1 fix; ValueError names the bad field.

    Speed arrives in knots. ``accuracy`` (metres) and ``batt`` are accepted and
    not stored: the store keeps GPS fields only. Without ``timestamp`` the fix
    is dated when it arrived, as Traccar does.
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
    return {
        "t": t.isoformat(),
        "lat": lat,
        "lon": lon,
        "speed": None if speed_kn is None else speed_kn * KNOTS_TO_MS,
        "heading": _optional("heading", heading),
        "alt": _float("alt", alt) if alt and alt.strip() else None,
        "hdop": _optional("hdop", params.get("hdop")),
    }


def _reading(coords: Mapping[str, Any], key: str) -> Any:
    """A JSON coordinate; the background-geolocation SDK sends -1 for unknown."""
    value = coords.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
        return None
    return value


def fix_from_json(location: Any, now: datetime) -> dict[str, Any]:
    """One ``location`` object of the JSON variant as a v1 fix. Speed is m/s here."""
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
    return {
        "t": t,
        "lat": coords.get("latitude"),
        "lon": coords.get("longitude"),
        "speed": _reading(coords, "speed"),
        "heading": _reading(coords, "heading"),
        "alt": coords.get("altitude"),
    }


def _params(pairs: list[tuple[str, str]]) -> dict[str, str]:
    # The last value wins when a name repeats, as in Traccar's decoder.
    return dict(pairs)


def _attempt(make: Callable[[T, datetime], dict[str, Any]], raw: T, now: datetime) -> Fix:
    """The fix, or the ValueError saying why it cannot be read: one bad fix is no bad body."""
    try:
        return make(raw, now)
    except ValueError as exc:
        return exc


def decode(
    query: list[tuple[str, str]],
    body: bytes,
    content_type: str | None,
    now: datetime,
    max_batch: int,
) -> Report:
    """Read a request in any of the three shapes. Pure; BodyError for an unreadable one."""
    params = _params(query)
    stripped = body.lstrip()
    is_json = "json" in (content_type or "").lower() or stripped[:1] in (b"{", b"[")
    if stripped and is_json:
        try:
            doc = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BodyError(422, f"body is not JSON: {exc}") from None
        except RecursionError:
            raise BodyError(422, "body is nested too deeply") from None
        if not isinstance(doc, dict) or "location" not in doc:
            raise BodyError(422, "JSON body must be an object with 'location'")
        token = doc.get("device_id", params.get("id", params.get("deviceid")))
        locations = doc["location"] if isinstance(doc["location"], list) else [doc["location"]]
        if len(locations) > max_batch:
            raise BodyError(413, f"{len(locations)} locations; at most {max_batch}")
        return Report(
            token if isinstance(token, str) else None,
            [_attempt(fix_from_json, loc, now) for loc in locations],
        )
    if stripped and not ({"lat", "lon", "location"} & params.keys()):
        try:
            form = parse_qsl(
                body.decode("utf-8"), keep_blank_values=True, max_num_fields=_MAX_FORM_FIELDS
            )
        except (UnicodeDecodeError, ValueError):
            raise BodyError(422, "body is neither JSON nor a form") from None
        params = {**params, **_params(form)}
    token = params.get("id", params.get("deviceid"))
    return Report(token or None, [_attempt(fix_from_params, params, now)])


@route(
    "/osmand",
    http_method=["GET", "POST"],
    status_code=200,
    tags=["telemetry"],
    summary="Upload one fix in the OsmAnd protocol (Traccar Client)",
)
async def osmand(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    svc = services(request)
    settings = svc.settings
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > settings.max_body_bytes:
        raise ApiError(413, f"body larger than {settings.max_body_bytes} bytes")
    body = await request.body()
    now = datetime.now(UTC)
    try:
        report = decode(
            [(str(k), str(v)) for k, v in request.query_params.multi_items()],
            body,
            request.headers.get("content-type"),
            now,
            settings.max_batch,
        )
    except BodyError as exc:
        raise ApiError(exc.status, exc.reason) from None
    device = await authenticate_device(
        svc, report.token, "missing device token: put it in the 'id' parameter"
    )
    decision = await svc.limiter.hit(
        settings.rate_limit_telemetry, "telemetry", f"device:{device.id}"
    )
    headers = {**decision.headers(), **limit_headers(settings)}
    if not decision.allowed:
        raise ApiError(429, "rate limit exceeded", headers=headers, limits=limits(settings))
    tolerance = timedelta(seconds=settings.future_tolerance_s)
    good: list[FixIn] = []
    rejected: list[dict[str, Any]] = []
    for index, raw in enumerate(report.fixes):
        try:
            if isinstance(raw, ValueError):
                raise raw
            good.append(validate_fix(raw, now, tolerance))
        except ValueError as exc:
            rejected.append({"index": index, "reason": str(exc)})
    accepted = duplicates = 0
    if good:
        try:
            result = await svc.store.insert_fixes(device.id, good, now)
        except StoreUnavailable:
            raise store_unavailable(headers) from None
        accepted, duplicates = result.accepted, result.duplicates
        if result.live is not None:
            await svc.publish(result.live)
    record_fixes(request, "osmand", accepted, duplicates, [r["reason"] for r in rejected])
    body_out = {
        "accepted": accepted,
        "duplicates": duplicates,
        "rejected": rejected,
        "limits": limits(settings),
    }
    return Response(body_out, status_code=200, headers=headers)
