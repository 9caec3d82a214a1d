"""The maintenance part of the store contract, on SQLite and on PostGIS: partitions,
retention, and the figures /metrics reads. Then SQLite's retention in chunks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from server.model import Event, FixIn
from server.store import Store, open_store
from server.store.base import Expired, PoolStats, retention_cutoff
from server.store.sqlite import SqliteStore
from tests.server.stored import count_fixes
from tests.server.test_store_contract import RECEIVED, add_bus, database_url

__all__ = ["database_url"]  # the contract suite's sqlite/postgis parametrisation

NOW = datetime.now(UTC).replace(microsecond=0)
CUTOFF = retention_cutoff(NOW, 90)


@pytest.fixture
async def store(database_url: str | None, tmp_path: Path) -> AsyncIterator[Store]:
    opened = open_store(database_url, tmp_path / "data", pool_size=4)
    await opened.open()
    yield opened
    await opened.close()


def at(t: datetime, lat: float = 45.0) -> FixIn:
    return FixIn(t=t, lat=lat, lon=9.0)


def test_the_cutoff_is_a_utc_midnight_whole_days_back() -> None:
    late = datetime(2026, 3, 10, 23, 59, tzinfo=UTC)
    assert retention_cutoff(late, 90) == datetime(2025, 12, 10, tzinfo=UTC)
    assert retention_cutoff(late.replace(hour=0, minute=0), 1) == datetime(2026, 3, 9, tzinfo=UTC)


async def test_partitions_are_made_ahead_where_the_store_has_them(
    store: Store, database_url: str | None
) -> None:
    day = NOW + timedelta(days=40)
    made = await store.ensure_partitions(day, days_behind=0, days_ahead=0)
    # SQLite keeps positions in one table: there is never a partition to make.
    assert made == ([] if database_url is None else [f"positions_{day:%Y%m%d}"])
    assert await store.ensure_partitions(day, days_behind=0, days_ahead=0) == []
    bus = await add_bus(store)
    assert (await store.insert_fixes(bus, [at(day)], RECEIVED)).accepted == 1
    assert await store.track(bus, day, day + timedelta(seconds=1)) == [at(day)]


async def test_retention_removes_history_before_the_cutoff_and_nothing_else(
    store: Store,
) -> None:
    bus = await add_bus(store, "bus-1")
    parked = await add_bus(store, "bus-parked")  # last heard from 100 days ago
    old, gone, kept = CUTOFF - timedelta(days=30), CUTOFF - timedelta(microseconds=1), CUTOFF
    recent = NOW - timedelta(hours=1)
    await store.insert_fixes(bus, [at(old), at(gone), at(kept), at(recent)], RECEIVED)
    await store.insert_fixes(parked, [at(NOW - timedelta(days=100), lat=46.0)], RECEIVED)
    sos = await store.add_event(Event(parked, "sos", old, RECEIVED))

    expired = await store.expire_positions(90, now=NOW)
    # No daily partition exists that far back here, so on PostGIS too they are rows deleted.
    assert expired == Expired(rows=3)
    assert await store.track(bus, old, NOW) == [at(kept), at(recent)]
    assert await count_fixes(store, parked) == 0
    # History goes; live positions and events stay.
    live = {p.device_id: p.fix for p in await store.live_positions()}
    assert live == {bus: at(recent), parked: at(NOW - timedelta(days=100), lat=46.0)}
    assert await store.events(parked, old, NOW) == [sos]
    assert await store.expire_positions(90, now=NOW) == Expired()


async def test_pool_and_group_commit_figures(store: Store, database_url: str | None) -> None:
    bus = await add_bus(store)
    before = store.group_stats()
    await store.insert_fixes(bus, [at(NOW - timedelta(minutes=1))], RECEIVED)
    after = store.group_stats()
    assert (after.statements, after.batches) == (before.statements + 1, before.batches + 1)
    pool = store.pool_stats()
    if database_url is None:
        assert pool is None  # one connection on one thread: no pool to report
    else:
        assert isinstance(pool, PoolStats)
        assert pool.max == 4 and 1 <= pool.size <= 4 and 0 <= pool.idle <= pool.size


# SQLite: retention deletes in chunks, and ingest goes on between them --------------


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "bustracker.sqlite3")
    await opened.open()
    yield opened
    await opened.close()


async def test_sqlite_expires_in_chunks_device_by_device(sqlite: SqliteStore) -> None:
    buses = [await add_bus(sqlite, f"bus-{n}") for n in range(3)]
    for n, bus in enumerate(buses):
        old = [at(CUTOFF - timedelta(minutes=m + 1)) for m in range(3 * n + 1)]  # 1, 4, 7
        await sqlite.insert_fixes(bus, [*old, at(CUTOFF)], RECEIVED)
    # 3 rows a chunk: exactly one chunk, a full one and then a short one, several of each.
    assert await sqlite.expire_positions(90, now=NOW, chunk_rows=3) == Expired(rows=12)
    assert [await count_fixes(sqlite, bus) for bus in buses] == [1, 1, 1]
    assert await sqlite.expire_positions(90, now=NOW, chunk_rows=1) == Expired()
    with pytest.raises(ValueError, match="chunk_rows"):
        await sqlite.expire_positions(90, now=NOW, chunk_rows=0)


async def test_sqlite_ingest_goes_on_between_chunks(sqlite: SqliteStore) -> None:
    bus = await add_bus(sqlite)
    old = [at(CUTOFF - timedelta(seconds=s + 1)) for s in range(300)]
    await sqlite.insert_fixes(bus, old, RECEIVED)
    expiring = asyncio.create_task(sqlite.expire_positions(90, now=NOW, chunk_rows=1))
    await asyncio.sleep(0)  # the first chunk is under way
    result = await sqlite.insert_fixes(bus, [at(NOW - timedelta(seconds=5))], RECEIVED)
    # Stored after a chunk or two, not after all 300 of them.
    assert result.accepted == 1 and not expiring.done()
    assert await expiring == Expired(rows=300)
    assert await count_fixes(sqlite, bus) == 1
