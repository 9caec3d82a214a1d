"""Protocol v1 on the agent side: encode fixes and batches, read the server's answer.

Pure: no I/O and no clock (the caller passes ``now``). The same encoding is
pinned by ``tests/contract/vectors/encoder.json``, which the server's decoder
passes too, because agents in the field are older than the server they talk to.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

from agent.fix import Fix

PATH = "/v1/telemetry/location"

AnswerKind = Literal["ok", "auth", "too_large", "unreadable", "retry", "error"]

_ROUNDING = {"alt": 1, "speed": 2, "heading": 1, "hdop": 1}


def format_time(t: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS[.fff]Z``: milliseconds only when non-zero, truncated not rounded.

    Truncation keeps the string inside the same second (rounding 59.9995 would
    carry into the next minute) and matches the buffer's millisecond key.
    """
    if t.tzinfo is None:
        raise ValueError("fix time must be timezone-aware")
    t = t.astimezone(UTC)
    ms = t.microsecond // 1000
    base = f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
    return f"{base}.{ms:03d}Z" if ms else f"{base}Z"


def _num(value: float, digits: int) -> float:
    return round(value, digits) + 0.0  # + 0.0 turns -0.0 into 0.0


def encode_fix(fix: Fix) -> dict[str, Any]:
    """One fix as its wire dict; None (and non-finite) optional fields are omitted."""
    if not (math.isfinite(fix.lat) and math.isfinite(fix.lon)):
        raise ValueError("lat/lon must be finite")
    out: dict[str, Any] = {
        "t": format_time(fix.t),
        "lat": _num(fix.lat, 7),
        "lon": _num(fix.lon, 7),
    }
    for name, digits in _ROUNDING.items():
        value = getattr(fix, name)
        if value is not None and math.isfinite(value):
            out[name] = _num(value, digits)
    if fix.sats is not None:
        out["sats"] = int(fix.sats)
    if fix.mode is not None:
        out["mode"] = int(fix.mode)
    return out


def encode_batch(fixes: Iterable[Fix], version: str, backlog: int, compress: bool = False) -> bytes:
    """The request body; gzip-compressed when ``compress`` (send ``Content-Encoding: gzip``)."""
    body = {
        "fixes": [encode_fix(f) for f in fixes],
        "agent": {"version": version, "backlog": backlog},
    }
    raw = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
    # mtime=0: identical batches give identical bytes, handy when comparing captures.
    return gzip.compress(raw, compresslevel=6, mtime=0) if compress else raw


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    reason: str


@dataclass(frozen=True, slots=True)
class Limits:
    """What the server advertises; None where it said nothing."""

    requests_per_minute: float | None = None
    max_batch: int | None = None
    remaining: int | None = None  # RateLimit-Remaining
    reset_s: float | None = None  # RateLimit-Reset: seconds until the window resets


@dataclass(frozen=True, slots=True)
class Answer:
    kind: AnswerKind
    status: int
    accepted: int = 0
    duplicates: int = 0
    rejected: tuple[Rejection, ...] = ()
    limits: Limits = field(default_factory=Limits)
    retry_after_s: float | None = None
    error: str | None = None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _float(value: str | None) -> float | None:
    try:
        out = float(value) if value is not None else None
    except ValueError:
        return None
    return out if out is not None and math.isfinite(out) else None


def parse_policy(value: str | None) -> float | None:
    """``RateLimit-Policy: 10;w=60`` -> requests per minute (first policy wins)."""
    if not value:
        return None
    m = re.match(r"\s*(\d+)\s*(?:;(.*))?", value.split(",")[0])
    if not m:
        return None
    quota, window = int(m.group(1)), 60.0
    for param in (m.group(2) or "").split(";"):
        key, _, val = param.strip().partition("=")
        if key == "w" and (w := _float(val)) and w > 0:
            window = w
    return quota * 60.0 / window


def parse_retry_after(value: str | None, now: datetime, date: str | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` of delta-seconds or an HTTP date.

    An HTTP date is measured against the answer's own ``Date`` header when it
    has one: the bus's clock may be far off, the server's two headers agree.
    """
    if value is None:
        return None
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    ref = now
    if date:
        try:
            ref = parsedate_to_datetime(date)
        except (TypeError, ValueError):
            ref = now
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if ref.tzinfo is None:
        ref = ref.replace(tzinfo=UTC)
    return max(0.0, (when - ref).total_seconds())


def _limits(headers: Mapping[str, str], body: Mapping[str, Any]) -> Limits:
    raw = body.get("limits")
    blimits: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
    rpm: float | None = parse_policy(headers.get("ratelimit-policy"))
    if rpm is None and (b := _int(blimits.get("requests_per_minute"))):
        rpm = float(b)
    max_batch = (
        _int(headers.get("x-max-batch"))
        or _int(blimits.get("max_batch"))
        or _int(body.get("max_batch"))
    )
    return Limits(
        requests_per_minute=rpm,
        max_batch=max_batch,
        remaining=_int(headers.get("ratelimit-remaining")),
        reset_s=_float(headers.get("ratelimit-reset")),
    )


def _rejections(raw: Any, n: int | None) -> tuple[Rejection, ...]:
    out = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict):
            continue
        index = _int(item.get("index"))
        if index is None or index < 0 or (n is not None and index >= n):
            continue  # an index we didn't send can't name a fix to drop
        out.append(Rejection(index, str(item.get("reason", "rejected"))))
    return tuple(out)


def parse_answer(
    status: int, headers: Mapping[str, str], body: bytes, now: datetime, sent: int | None = None
) -> Answer:
    """Classify the server's answer. ``headers`` keys must be lower-case (httpx's are
    case-insensitive already). ``sent`` is the batch size, to ignore bogus indexes."""
    try:
        data = json.loads(body) if body else {}
    except (ValueError, UnicodeDecodeError):
        data = None
    parsed: dict[str, Any] = data if isinstance(data, dict) else {}
    limits = _limits(headers, parsed)
    error = parsed.get("error") if isinstance(parsed.get("error"), str) else None
    retry = parse_retry_after(headers.get("retry-after"), now, headers.get("date"))
    if status == 200:
        accepted, duplicates = _int(parsed.get("accepted")), _int(parsed.get("duplicates"))
        if data is None or accepted is None:
            # A 200 we can't read proves nothing about durability: resend later.
            return Answer("error", status, limits=limits, error="unreadable 200 answer")
        return Answer(
            "ok",
            status,
            accepted,
            duplicates or 0,
            _rejections(parsed.get("rejected"), sent),
            limits,
        )
    kind: AnswerKind
    if status in (401, 403):
        kind = "auth"
    elif status == 413:
        kind = "too_large"
    elif status in (415, 422):
        kind = "unreadable"
    elif status in (408, 429) or status >= 500:
        kind = "retry"
    else:
        kind = "error"
    return Answer(kind, status, limits=limits, retry_after_s=retry, error=error or f"HTTP {status}")
