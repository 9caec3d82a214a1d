"""A running server keeps PostGIS partitions itself: old days dropped per RETENTION_DAYS."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from server.model import FixIn
from server.store.postgis import PostgisStore
from tests.server.running import RunningServer, run_async
from tests.services import PgCluster


def _partitions(pg_cluster: PgCluster, url: str) -> set[str]:
    dbname = url.rsplit("/", 1)[1]
    rows = pg_cluster.fetchval(
        "SELECT string_agg(c.relname, ',') FROM pg_inherits i"
        " JOIN pg_class c ON c.oid = i.inhrelid"
        " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'positions'",
        dbname=dbname,
    )
    return set(str(rows or "").split(","))


def test_server_drops_partitions_past_retention(
    server_factory: Callable[..., RunningServer], postgis_url: str, pg_cluster: PgCluster
) -> None:
    old = datetime.now(UTC) - timedelta(days=120)
    old_partition = f"positions_{old:%Y%m%d}"

    async def seed() -> None:
        store = PostgisStore(postgis_url)
        await store.open()
        try:
            bus = await store.add_device("bus-old", "hash-old")
            await store.ensure_partitions(old, days_behind=0, days_ahead=0)
            await store.insert_fixes(bus.id, [FixIn(old, 45.0, 9.0)], datetime.now(UTC))
        finally:
            await store.close()

    run_async(seed)
    assert old_partition in _partitions(pg_cluster, postgis_url)
    server_factory(postgis_url, retention_days=90)
    deadline = time.monotonic() + 30
    while old_partition in _partitions(pg_cluster, postgis_url):
        assert time.monotonic() < deadline, "the server never applied RETENTION_DAYS"
        time.sleep(0.2)
    # Partitions ahead exist too, so tomorrow's fixes do not fall into the default one.
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    assert f"positions_{tomorrow:%Y%m%d}" in _partitions(pg_cluster, postgis_url)
