"""The agent side of protocol v1: every encoder vector through ``encode_fix``."""

from __future__ import annotations

from typing import Any

import pytest

from agent.fix import Fix
from agent.protocol import encode_fix
from tests.contract.vectors import encoder_vectors, parse_t

VECTORS = encoder_vectors()


def build_fix(raw: dict[str, Any]) -> Fix:
    return Fix(
        t=parse_t(raw["t"]),
        lat=raw["lat"],
        lon=raw["lon"],
        alt=raw.get("alt"),
        speed=raw.get("speed"),
        heading=raw.get("heading"),
        hdop=raw.get("hdop"),
        sats=raw.get("sats"),
        mode=raw.get("mode"),
    )


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"][:40] for v in VECTORS])
def test_encoder_vector(vector: dict[str, Any]) -> None:
    wire = encode_fix(build_fix(vector["fix"]))
    assert wire == vector["wire"]
    # Types are strict on the server: equal-but-different types (1 vs 1.0) count.
    assert {k: type(v) for k, v in wire.items()} == {k: type(v) for k, v in vector["wire"].items()}
