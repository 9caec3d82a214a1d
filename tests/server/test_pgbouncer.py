"""The PostGIS store behind a real PgBouncer in transaction pooling (DB_PGBOUNCER=true).

Eight client connections share two server connections, so every kind of
statement the server sends (grouped inserts, COPY backfill, reads, partition
DDL, migrations, the worker's lock) runs with consecutive transactions on
different server connections.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from server.model import FixIn
from server.store import open_store
from server.store.postgis import PostgisStore
from tests.pgbouncer_service import pgbouncer
from tests.server.stored import count_fixes

__all__ = ["pgbouncer"]

NOW = datetime.now(UTC).replace(microsecond=0)


def fixes(n: int, start: datetime) -> list[FixIn]:
    return [FixIn(start + timedelta(seconds=i), 45.0 + i / 1e5, 9.0) for i in range(n)]


async def test_ingest_reads_and_upkeep_through_pgbouncer(pgbouncer: str, postgis_url: str) -> None:
    url = f"{pgbouncer}/{postgis_url.rsplit('/', 1)[1]}"
    store = open_store(url, Path("unused"), pool_size=8, pgbouncer=True)
    assert isinstance(store, PostgisStore)
    assert await store.migrate() != []  # the whole schema, through the bouncer
    await store.open()
    try:
        buses = [(await store.add_device(f"bus-{i}", f"hash-{i}")).id for i in range(12)]
        start = NOW - timedelta(hours=1)

        async def small(bus: int) -> int:
            total = 0
            for k in range(5):
                batch = fixes(3, start + timedelta(minutes=k))
                total += (await store.insert_fixes(bus, batch, NOW)).accepted
                await store.live_positions()
            return total

        async def backfill(bus: int) -> int:
            # From 64 fixes on, COPY into the staging table: a session object elsewhere.
            batch = fixes(200, start - timedelta(hours=2))
            return (await store.insert_fixes(bus, batch, NOW)).accepted

        async def reads(bus: int) -> None:
            for _ in range(5):
                await store.track(bus, start - timedelta(hours=3), NOW)
                await store.nearby(45.0, 9.0, 1000)

        results = await asyncio.gather(
            *(small(b) for b in buses),
            *(backfill(b) for b in buses[:3]),
            *(reads(b) for b in buses[3:6]),
        )
        assert results[: len(buses)] == [15] * len(buses)
        assert results[len(buses) : len(buses) + 3] == [200] * 3
        assert await count_fixes(store, buses[0]) == 215
        assert len(await store.live_positions()) == len(buses)

        # The worker's steps: a partition with DDL and a lock held across statements.
        ahead = NOW + timedelta(days=30)
        assert await store.ensure_partitions(ahead, days_behind=0, days_ahead=0) == [
            f"positions_{ahead:%Y%m%d}"
        ]
        async with store.maintenance_lock() as held:
            assert held
            other = PostgisStore(url, pgbouncer=True, migrate=False)
            async with other.maintenance_lock() as second:
                assert not second
        await store.refresh_statistics()
    finally:
        await store.close()
