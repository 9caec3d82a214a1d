"""A running server keeps its store itself: fixes older than RETENTION_DAYS go.

PostGIS drops old daily partitions (and makes new ones ahead); SQLite deletes the rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from server.model import FixIn
from server.store import open_store
from server.store.postgis import PostgisStore
from tests.server.running import RunningServer, run_async
from tests.server.stored import count_fixes
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


def test_server_deletes_sqlite_fixes_past_retention(
    server_factory: Callable[..., RunningServer], tmp_path: Path
) -> None:
    data_dir = tmp_path / "sqlite-data"
    now = datetime.now(UTC)
    old, recent = FixIn(now - timedelta(days=120), 45.0, 9.0), FixIn(now, 45.1, 9.1)

    async def seed() -> int:
        store = open_store(None, data_dir)
        await store.open()
        try:
            bus = await store.add_device("bus-old", "hash-old")
            await store.insert_fixes(bus.id, [old, recent], now)
            return bus.id
        finally:
            await store.close()

    bus = run_async(seed)
    server = server_factory(data_dir=data_dir, retention_days=90)
    deadline = time.monotonic() + 30
    while server._with_store(count_fixes) > 1:
        assert time.monotonic() < deadline, "the server never applied RETENTION_DAYS"
        time.sleep(0.2)
    assert server._with_store(lambda s: s.track(bus, old.t, now + timedelta(1))) == [recent]
