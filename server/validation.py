"""Protocol v1 decoding and per-fix validation. Pure: bytes and dicts in, records out.

One bad fix never blocks a batch: each fix is judged alone and a rejection
carries its index and a reason the agent can log.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import msgspec

from server.model import AgentReport, FixIn

# Before GPS time can be trusted: a receiver that reports 1980 or 1999 is
# still in its week-rollover or cold-start state.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
# Epoch seconds beyond this are almost surely milliseconds.
_MAX_EPOCH_S = 32503680000.0  # year 3000


class BodyError(Exception):
    """The whole request is unusable; ``status`` is the HTTP answer (413, 415, 422)."""

    def __init__(self, status: int, reason: str, **extra: Any) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.extra = extra


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    reason: str


@dataclass(frozen=True, slots=True)
class Batch:
    fixes: list[tuple[int, FixIn]]
    rejected: list[Rejection]
    agent: AgentReport | None = None  # the v1 body's agent object, when well formed


def inflate(raw: bytes, content_encoding: str | None, limit: int) -> bytes:
    """Undo ``Content-Encoding``; refuse bodies (and gzip bombs) larger than ``limit``."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("identity", ""):
        if len(raw) > limit:
            raise BodyError(413, f"body larger than {limit} bytes", max_body_bytes=limit)
        return raw
    if encoding not in ("gzip", "x-gzip"):
        raise BodyError(415, f"unsupported Content-Encoding {encoding!r}; use gzip or none")
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(raw, limit + 1)
    except zlib.error:
        raise BodyError(422, "body is not valid gzip") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise BodyError(413, f"body larger than {limit} bytes once inflated", max_body_bytes=limit)
    if not inflater.eof:
        raise BodyError(422, "gzip body is truncated")
    return out


def _stdlib_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BodyError(422, f"body is not JSON: {exc}") from None
    except RecursionError:
        raise BodyError(422, "body is nested too deeply") from None
    except ValueError:
        # Python refuses to read integers of more than 4,300 digits (CVE-2020-10735).
        raise BodyError(422, "body holds a number too long to read") from None


def parse_batch(body: bytes, max_batch: int) -> list[Any]:
    """The ``fixes`` list of a v1 body, or BodyError.

    The body's ``agent`` object is read apart (``agent_report``): a malformed
    one is ignored, never a reason to refuse the fixes.
    """
    try:
        # msgspec reads a 500-fix body several times faster than json; the stdlib
        # parser stays as the fallback for what msgspec refuses but a fix-by-fix
        # answer is still owed for (NaN, Infinity) and for its error messages.
        doc = msgspec.json.decode(body)
    except msgspec.DecodeError:
        doc = _stdlib_json(body)
    except RecursionError:
        raise BodyError(422, "body is nested too deeply") from None
    if not isinstance(doc, dict):
        raise BodyError(422, "body must be a JSON object with a 'fixes' list")
    fixes = doc.get("fixes")
    if not isinstance(fixes, list):
        raise BodyError(422, "'fixes' must be a list")
    if len(fixes) > max_batch:
        raise BodyError(
            413, f"{len(fixes)} fixes in one request; at most {max_batch}", max_batch=max_batch
        )
    return fixes


def parse_time(value: Any) -> datetime:
    """ISO 8601 with an offset, or epoch seconds; raises ValueError with a reason."""
    if isinstance(value, bool):
        raise ValueError("t: must be an ISO 8601 string or epoch seconds")
    if isinstance(value, int | float):
        if not math.isfinite(value) or not 0 <= value < _MAX_EPOCH_S:
            raise ValueError("t: epoch seconds out of range (milliseconds sent?)")
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        try:
            t = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"t: not an ISO 8601 time: {value[:40]!r}") from None
        if t.tzinfo is None:
            raise ValueError("t: needs a UTC offset or 'Z'")
        return t.astimezone(UTC)
    raise ValueError("t: must be an ISO 8601 string or epoch seconds")


# Inclusive bounds of each number a fix may carry: the per-fix path and the
# typed fast path (``decode_typed``) both read them from here.
RANGES: dict[str, tuple[float, float]] = {
    "lat": (-90, 90),
    "lon": (-180, 180),
    "alt": (-1000, 20000),
    "speed": (0, 150),
    "heading": (0, 360),
    "hdop": (0, 100),
}
INT_RANGES: dict[str, tuple[int, int]] = {"sats": (0, 255), "mode": (0, 3)}


def _number(fix: dict[str, Any], key: str, lo: float, hi: float) -> float | None:
    value = fix.get(key)
    if value is None:
        return None
    # bool is an int subclass in Python; "true" is never a latitude.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key}: must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{key}: must be a finite number")
    if not lo <= value <= hi:
        raise ValueError(f"{key}: {value} outside {lo:g}..{hi:g}")
    return float(value)


def _integer(fix: dict[str, Any], key: str, lo: int, hi: int) -> int | None:
    value = fix.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key}: must be an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise ValueError(f"{key}: {value} outside {lo}..{hi}")
    return value


def check_time(t: datetime, now: datetime, future_tolerance: timedelta) -> datetime:
    if t < EARLIEST:
        raise ValueError(f"t: {t.isoformat()} is before {EARLIEST.year}; GPS time not settled")
    if t > now + future_tolerance:
        raise ValueError(
            f"t: {int((t - now).total_seconds())} s in the future "
            f"(at most {int(future_tolerance.total_seconds())} s allowed)"
        )
    return t


def check_position(lat: float, lon: float) -> None:
    if lat == 0 and lon == 0:
        raise ValueError("lat/lon: 0,0 is a receiver's no-fix placeholder")


def validate_fix(raw: Any, now: datetime, future_tolerance: timedelta) -> FixIn:
    """One wire fix as a FixIn; ValueError carries the reason. Unknown keys are ignored."""
    if not isinstance(raw, dict):
        raise ValueError("fix must be a JSON object")
    for key in ("t", "lat", "lon"):
        if raw.get(key) is None:
            raise ValueError(f"{key}: required")
    t = check_time(parse_time(raw["t"]), now, future_tolerance)
    lat = _number(raw, "lat", *RANGES["lat"])
    lon = _number(raw, "lon", *RANGES["lon"])
    assert lat is not None and lon is not None
    check_position(lat, lon)
    return FixIn(
        t=t,
        lat=lat,
        lon=lon,
        alt=_number(raw, "alt", *RANGES["alt"]),
        speed=_number(raw, "speed", *RANGES["speed"]),
        heading=_number(raw, "heading", *RANGES["heading"]),
        hdop=_number(raw, "hdop", *RANGES["hdop"]),
        sats=_integer(raw, "sats", *INT_RANGES["sats"]),
        mode=_integer(raw, "mode", *INT_RANGES["mode"]),
    )


def validate_batch(
    items: list[Any], now: datetime, future_tolerance: timedelta = timedelta(minutes=5)
) -> tuple[list[tuple[int, FixIn]], list[Rejection]]:
    good: list[tuple[int, FixIn]] = []
    bad: list[Rejection] = []
    for index, raw in enumerate(items):
        try:
            good.append((index, validate_fix(raw, now, future_tolerance)))
        except ValueError as exc:
            bad.append(Rejection(index, str(exc)))
    return good, bad


def _range(key: str) -> msgspec.Meta:
    lo, hi = RANGES[key] if key in RANGES else INT_RANGES[key]
    return msgspec.Meta(ge=lo, le=hi)


class _WireFix(msgspec.Struct):
    """A fix whose every field is well typed and in range (unknown keys are skipped)."""

    t: str | float
    lat: Annotated[float, _range("lat")]
    lon: Annotated[float, _range("lon")]
    alt: Annotated[float, _range("alt")] | None = None
    speed: Annotated[float, _range("speed")] | None = None
    heading: Annotated[float, _range("heading")] | None = None
    hdop: Annotated[float, _range("hdop")] | None = None
    sats: Annotated[int, _range("sats")] | None = None
    mode: Annotated[int, _range("mode")] | None = None


class _WireBody(msgspec.Struct):
    fixes: list[_WireFix]
    agent: Any = None


MAX_AGENT_VERSION = 64


def _short_printable(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_AGENT_VERSION and value.isprintable()


def agent_report(value: Any) -> AgentReport | None:
    """``{"version": str, "backlog": int >= 0}`` as a report; what is off in it is dropped."""
    if not isinstance(value, dict):
        return None
    version = value.get("version")
    if not _short_printable(version):
        version = None
    backlog = value.get("backlog")
    if isinstance(backlog, bool) or not isinstance(backlog, int) or not 0 <= backlog < 2**31:
        backlog = None
    return None if version is None and backlog is None else AgentReport(version, backlog)


def agent_of_body(body: bytes) -> AgentReport | None:
    """The agent object of a body the typed path refused (the per-fix path reads it apart)."""
    try:
        doc = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
    return agent_report(doc.get("agent")) if isinstance(doc, dict) else None


_TYPED = msgspec.json.Decoder(_WireBody)


def decode_typed(
    body: bytes, now: datetime, max_batch: int, future_tolerance: timedelta
) -> Batch | None:
    """The fast path: a body whose fixes all have the right types and ranges.

    msgspec checks those in C; what is left per fix is the time and the 0,0
    rule. ``None`` means some part of the body is off, and the per-fix path
    (``parse_batch`` + ``validate_batch``) must find which and say why, so both
    paths give the same answer for every body.
    """
    try:
        doc = _TYPED.decode(body)
    except (msgspec.DecodeError, RecursionError):  # also msgspec.ValidationError
        return None
    if len(doc.fixes) > max_batch:
        return None
    good: list[tuple[int, FixIn]] = []
    bad: list[Rejection] = []
    for index, f in enumerate(doc.fixes):
        try:
            t = check_time(parse_time(f.t), now, future_tolerance)
            check_position(f.lat, f.lon)
        except ValueError as exc:
            bad.append(Rejection(index, str(exc)))
            continue
        fix = FixIn(t, f.lat, f.lon, f.alt, f.speed, f.heading, f.hdop, f.sats, f.mode)
        good.append((index, fix))
    return Batch(good, bad, agent_report(doc.agent))


def decode(
    raw: bytes,
    content_encoding: str | None,
    now: datetime,
    *,
    max_batch: int,
    max_body_bytes: int,
    future_tolerance: timedelta = timedelta(minutes=5),
) -> Batch:
    body = inflate(raw, content_encoding, max_body_bytes)
    typed = decode_typed(body, now, max_batch, future_tolerance)
    if typed is not None:
        return typed
    good, bad = validate_batch(parse_batch(body, max_batch), now, future_tolerance)
    return Batch(good, bad, agent_of_body(body))
