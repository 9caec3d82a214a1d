"""The server side of protocol v1: every vector through ingest into both real stores."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

from server.auth import hash_device_token
from server.ingest import ingest
from server.settings import Settings
from server.store import open_store
from server.validation import BodyError
from tests.contract.vectors import check_answer, parse_t, request_bytes, server_vectors

VECTORS = server_vectors()


@pytest.fixture(params=["sqlite", "postgis"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("postgis_url")
    return url


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"][:40] for v in VECTORS])
async def test_vector(vector: dict[str, Any], database_url: str | None, tmp_path: Path) -> None:
    settings = Settings().with_values(max_batch=vector.get("max_batch", 500))
    store = open_store(database_url, tmp_path)
    await store.open()
    try:
        device = await store.add_device("bus-1", hash_device_token("token"))
        now = parse_t(vector["now"])
        for request in vector["requests"]:
            raw, encoding = request_bytes(request)
            try:
                answer = await ingest(store, device, raw, encoding, now, settings)
                status, body = 200, answer.body(settings)
            except BodyError as exc:
                status, body = exc.status, {"error": exc.reason, **exc.extra}
            check_answer(request["expect"], status, body)
        stored = await store.track(
            device.id, parse_t("2000-01-01T00:00:00Z"), now.replace(year=2100)
        )
        assert [f.t for f in stored] == [parse_t(t) for t in vector["expect_stored"]]
        assert all(
            f.t.tzinfo is not None and f.t.utcoffset() == UTC.utcoffset(None) for f in stored
        )
        live = {p.device_id: p for p in await store.live_positions()}
        assert live[device.id].fix.t == parse_t(vector["expect_live"])
    finally:
        await store.close()
