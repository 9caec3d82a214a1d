"""Loading the protocol v1 test vectors that both the agent and the server must pass."""

from __future__ import annotations

import gzip
import json
from datetime import datetime
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).parent / "vectors"


def encoder_vectors() -> list[dict[str, Any]]:
    vectors: list[dict[str, Any]] = json.loads((VECTORS / "encoder.json").read_text())
    return vectors


def server_vectors() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((VECTORS / "server").glob("*.json"))]


def request_bytes(request: dict[str, Any]) -> tuple[bytes, str | None]:
    """The raw body and Content-Encoding a vector's request stands for."""
    if "body_text" in request:
        raw = request["body_text"].encode()
    elif "body_latin1" in request:
        raw = request["body_latin1"].encode("latin-1")
    else:
        raw = json.dumps(request["body"]).encode()
    if request.get("gzip"):
        return gzip.compress(raw), "gzip"
    if request.get("gzip_corrupt"):
        packed = gzip.compress(raw)
        return packed[: len(packed) // 2], "gzip"
    return raw, None


def parse_t(value: str) -> datetime:
    return datetime.fromisoformat(value)


def check_answer(expect: dict[str, Any], status: int, body: dict[str, Any]) -> None:
    assert status == expect["status"], (status, body)
    if status != 200:
        assert body["error"].startswith(expect["error_startswith"]), body
        for key in set(expect) - {"status", "error_startswith"}:
            assert body[key] == expect[key], (key, body)
        return
    assert body["accepted"] == expect["accepted"], body
    assert body["duplicates"] == expect["duplicates"], body
    got = body["rejected"]
    want = expect["rejected"]
    assert [r["index"] for r in got] == [r["index"] for r in want], got
    for g, w in zip(got, want, strict=True):
        assert g["reason"].startswith(w["reason_startswith"]), (g, w)
