"""The typed fast path and the per-fix path give an agent the same answer for any body.

Ingest tries msgspec's typed decoding first and falls back to judging fix by
fix. An agent must not be able to tell which one ran: the same fixes stored,
the same rejections with the same reasons at the same indexes.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.validation import (
    INT_RANGES,
    RANGES,
    Batch,
    BodyError,
    agent_of_body,
    decode,
    decode_typed,
    parse_batch,
    validate_batch,
)

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
TOLERANCE = timedelta(minutes=5)
MAX_BATCH = 20

BOUNDS = {**RANGES, **INT_RANGES}
FIELDS = ("t", *BOUNDS)


def around(key: str) -> st.SearchStrategy[Any]:
    """Values on, just inside and just outside a field's bounds, and its wrong types."""
    lo, hi = BOUNDS[key]
    edges = [lo, hi, lo - 1, hi + 1, (lo + hi) / 2, float(lo), float(hi)]
    if key in RANGES:
        edges += [math.nextafter(lo, -math.inf), math.nextafter(hi, math.inf), 2.0**80]
    return st.one_of(
        st.sampled_from(edges),
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.none(),
        st.booleans(),
        st.text(max_size=3),
    )


times = st.one_of(
    st.datetimes(
        min_value=datetime(1990, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
    ).map(lambda t: t.isoformat().replace("+00:00", "Z")),
    st.sampled_from(
        [
            "2026-11-29T12:04:59+00:00",  # inside the tolerance
            "2026-11-29T13:05:01+01:00",  # just beyond it
            "2026-11-29T12:00:00",  # no offset
            "1999-12-31T23:59:59Z",
            "yesterday",
            "",
        ]
    ),
    st.floats(min_value=-10, max_value=4e10, allow_nan=False),
    st.integers(min_value=-10, max_value=2**40),
    st.none(),
    st.booleans(),
)


def good_fix(i: int) -> dict[str, Any]:
    return {"t": (NOW - timedelta(seconds=60 - i)).isoformat(), "lat": 45.0, "lon": 9.0 + i,
            "alt": 100, "speed": 5.5, "heading": 90, "hdop": 0.8, "sats": 9, "mode": 3}  # fmt: skip


@st.composite
def bodies(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly well-formed batches with one or two fields off, as real agents send.

    A body with any field off leaves the typed path, so the bodies that test
    its own checks are those whose only odd values are still well typed.
    """
    fixes: list[Any] = [good_fix(i) for i in range(draw(st.integers(0, MAX_BATCH + 2)))]
    for _ in range(draw(st.integers(0, 2)) if fixes else 0):
        fix = fixes[draw(st.integers(0, len(fixes) - 1))]
        key = draw(st.sampled_from(FIELDS))
        how = draw(st.integers(0, 9))
        if how == 0:
            fix.pop(key, None)
        elif how == 1:
            fix["extra"] = draw(around("lat"))  # unknown keys are ignored, whatever they hold
        else:
            fix[key] = draw(times if key == "t" else around(key))
    if fixes and draw(st.integers(0, 20)) == 0:
        fixes[0] = draw(st.sampled_from([None, 1, "fix", [1]]))
    doc: dict[str, Any] = {"fixes": fixes}
    if draw(st.booleans()):
        doc["agent"] = draw(st.sampled_from([{"version": "1.0"}, {}, None, "x", 1]))
    return doc


def per_fix(body: bytes) -> Batch:
    good, bad = validate_batch(parse_batch(body, MAX_BATCH), NOW, TOLERANCE)
    return Batch(good, bad, agent_of_body(body))


def answer(run: Any, body: bytes) -> Batch | str:
    try:
        result: Batch = run(body)
        return result
    except BodyError as exc:
        return f"{exc.status} {exc.reason}"


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies())
def test_both_paths_answer_alike(doc: dict[str, Any]) -> None:
    body = json.dumps(doc).encode()
    slow = answer(per_fix, body)
    full = answer(lambda b: decode(b, None, NOW, max_batch=MAX_BATCH, max_body_bytes=1 << 20), body)
    assert full == slow


def edge_values(key: str) -> list[Any]:
    if key == "t":
        return ["2026-11-29T12:05:00Z", "2026-11-29T12:05:00.000001Z", "1999-12-31T23:59:59Z",
                "2000-01-01T00:00:00Z", "2026-11-29T12:00:00", 946684800, 946684799.5,
                1.7e9, 32503680000.0, -1, "x", None, True, [1]]  # fmt: skip
    lo, hi = BOUNDS[key]
    values: list[Any] = [lo, hi, lo - 1, hi + 1, float(lo), float(hi), 2**70, None, True, "1"]
    if key in RANGES:
        values += [math.nextafter(lo, -math.inf), math.nextafter(hi, math.inf), hi - 0.5]
    else:
        values += [float(lo), lo + 0.5]
    return values


CASES = [(key, value) for key in FIELDS for value in [*edge_values(key), "missing"]]
# The receivers' no-fix placeholder, which only both coordinates together make.
CASES += [("lat,lon", (0, 0)), ("lat,lon", (0.0, -0.0)), ("lat,lon", (0, 1e-9))]


@pytest.mark.parametrize(("key", "value"), CASES, ids=[f"{k}={v!r}" for k, v in CASES])
def test_each_field_at_its_edges(key: str, value: Any) -> None:
    fixes = [good_fix(i) for i in range(3)]
    if value == "missing":
        del fixes[1][key]
    elif key == "lat,lon":
        fixes[1]["lat"], fixes[1]["lon"] = value
    else:
        fixes[1][key] = value
    body = json.dumps({"fixes": fixes}).encode()
    full = answer(lambda b: decode(b, None, NOW, max_batch=MAX_BATCH, max_body_bytes=1 << 20), body)
    assert full == answer(per_fix, body)


def test_well_formed_batches_take_the_typed_path() -> None:
    """Agents' ordinary batches (the bulk of all traffic) never need the slow path."""
    t0 = NOW - timedelta(minutes=1)
    body = json.dumps(
        {
            "fixes": [
                {"t": (t0 + timedelta(seconds=i)).isoformat(), "lat": 45.1, "lon": 9.2,
                 "alt": 120, "speed": 6.5, "heading": 90, "hdop": 0.9, "sats": 8, "mode": 3}
                for i in range(10)
            ],
            "agent": {"version": "1.0"},
        }
    ).encode()  # fmt: skip
    typed = decode_typed(body, NOW, MAX_BATCH, TOLERANCE)
    assert typed is not None
    assert len(typed.fixes) == 10 and typed.rejected == []
    assert typed == per_fix(body)


def test_one_wrong_type_falls_back_and_names_the_fix() -> None:
    body = json.dumps(
        {"fixes": [{"t": NOW.isoformat(), "lat": 1, "lon": 1}, {"t": 5, "lat": "x", "lon": 1}]}
    ).encode()
    assert decode_typed(body, NOW, MAX_BATCH, TOLERANCE) is None
    batch = decode(body, None, NOW, max_batch=MAX_BATCH, max_body_bytes=1 << 20)
    assert [i for i, _ in batch.fixes] == [0]
    assert [(r.index, r.reason.split(":")[0]) for r in batch.rejected] == [(1, "t")]
