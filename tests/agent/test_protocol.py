from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from agent.fix import Fix
from agent.protocol import (
    encode_batch,
    encode_fix,
    format_time,
    parse_answer,
    parse_policy,
    parse_retry_after,
)

NOW = datetime(2026, 11, 29, 8, 0, 0, tzinfo=UTC)
T = datetime(2026, 11, 29, 8, 0, 9, tzinfo=UTC)


def test_time_format_milliseconds_only_when_nonzero() -> None:
    assert format_time(T) == "2026-11-29T08:00:09Z"
    assert format_time(T + timedelta(microseconds=250_000)) == "2026-11-29T08:00:09.250Z"
    assert format_time(T + timedelta(microseconds=999)) == "2026-11-29T08:00:09Z"
    # truncated, never carried into the next minute
    assert format_time(T.replace(second=59, microsecond=999_900)) == "2026-11-29T08:00:59.999Z"
    tz = timezone(timedelta(hours=-5))
    assert format_time(datetime(2026, 11, 29, 3, 0, 9, tzinfo=tz)) == "2026-11-29T08:00:09Z"
    with pytest.raises(ValueError):
        format_time(datetime(2026, 11, 29))


def test_encode_fix_rounding_and_omission() -> None:
    f = Fix(
        T,
        45.465123456,
        -9.00000004,
        alt=120.04,
        speed=6.4349,
        heading=None,
        hdop=float("nan"),
        sats=8,
        mode=3,
    )
    assert encode_fix(f) == {
        "t": "2026-11-29T08:00:09Z",
        "lat": 45.4651235,
        "lon": 0.0 - 9.0,
        "alt": 120.0,
        "speed": 6.43,
        "sats": 8,
        "mode": 3,
    }
    with pytest.raises(ValueError):
        encode_fix(Fix(T, float("inf"), 0.0))


def test_encode_batch_plain_and_gzip() -> None:
    fixes = [Fix(T, 45.0, 9.0), Fix(T + timedelta(seconds=1), 45.1, 9.1, mode=3)]
    plain = encode_batch(fixes, "1.2.3", 42)
    body = json.loads(plain)
    assert body == {
        "fixes": [encode_fix(f) for f in fixes],
        "agent": {"version": "1.2.3", "backlog": 42},
    }
    packed = encode_batch(fixes, "1.2.3", 42, compress=True)
    assert gzip.decompress(packed) == plain
    assert packed == encode_batch(fixes, "1.2.3", 42, compress=True)  # deterministic


def test_parse_ok_answer_with_limits() -> None:
    headers = {
        "ratelimit-limit": "10",
        "ratelimit-remaining": "7",
        "ratelimit-reset": "42",
        "ratelimit-policy": "10;w=60",
        "x-max-batch": "500",
    }
    body = {
        "accepted": 2,
        "duplicates": 1,
        "rejected": [{"index": 2, "reason": "lat: range"}, {"index": 9, "reason": "bogus"}],
        "limits": {"requests_per_minute": 10, "max_batch": 500},
    }
    a = parse_answer(200, headers, json.dumps(body).encode(), NOW, sent=3)
    assert a.kind == "ok" and (a.accepted, a.duplicates) == (2, 1)
    assert [(r.index, r.reason) for r in a.rejected] == [(2, "lat: range")]
    assert a.limits.requests_per_minute == 10 and a.limits.max_batch == 500
    assert (a.limits.remaining, a.limits.reset_s) == (7, 42.0)


def test_limits_from_body_when_headers_missing() -> None:
    body = {
        "accepted": 1,
        "duplicates": 0,
        "rejected": [],
        "limits": {"requests_per_minute": 30, "max_batch": 100},
    }
    a = parse_answer(200, {}, json.dumps(body).encode(), NOW)
    assert a.limits.requests_per_minute == 30 and a.limits.max_batch == 100


def test_unreadable_200_is_not_trusted() -> None:
    assert parse_answer(200, {}, b"<html>", NOW).kind == "error"
    assert parse_answer(200, {}, b"{}", NOW).kind == "error"


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, "auth"),
        (403, "auth"),
        (413, "too_large"),
        (422, "unreadable"),
        (415, "unreadable"),
        (429, "retry"),
        (503, "retry"),
        (500, "retry"),
        (404, "error"),
        (400, "error"),
    ],
)
def test_status_classes(status: int, kind: str) -> None:
    a = parse_answer(status, {}, b'{"error": "why"}', NOW)
    assert a.kind == kind and a.error == "why"


def test_413_carries_max_batch() -> None:
    a = parse_answer(413, {}, b'{"error": "too many", "max_batch": 3}', NOW)
    assert a.limits.max_batch == 3


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("120", NOW) == 120.0
    assert parse_retry_after("Sun, 29 Nov 2026 08:00:30 GMT", NOW) == 30.0
    assert parse_retry_after("Sun, 29 Nov 2026 07:00:00 GMT", NOW) == 0.0
    assert parse_retry_after("soon", NOW) is None
    # Measured against the server's own Date, not the bus's clock (years off).
    assert (
        parse_retry_after(
            "Sun, 29 Nov 2026 08:00:30 GMT",
            NOW - timedelta(days=800),
            date="Sun, 29 Nov 2026 08:00:20 GMT",
        )
        == 10.0
    )
    a = parse_answer(429, {"retry-after": "7"}, b'{"error": "slow down"}', NOW)
    assert a.kind == "retry" and a.retry_after_s == 7.0


def test_policy_header() -> None:
    assert parse_policy("10;w=60") == 10.0
    assert parse_policy("5;w=30, 100;w=3600") == 10.0
    assert parse_policy("20") == 20.0
    assert parse_policy("") is None and parse_policy("x") is None
