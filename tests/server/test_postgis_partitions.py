"""PostGIS specifics: daily partitions, the default partition, retention, migrations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from server.model import FixIn
from server.store import SchemaNotCurrent, migrations, open_store
from server.store.base import Expired
from server.store.postgis import PostgisStore
from tests.server.stored import count_fixes

pytestmark = pytest.mark.postgis

NOW = datetime.now(UTC)
TODAY = NOW.date()
# Every migration this code has, as a fresh database gets them.
ALL = [m.name for m in migrations.available("postgis")]


def partition(day: date) -> str:
    return f"positions_{day:%Y%m%d}"


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


async def query(url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
        return rows
    finally:
        await conn.close()


async def partitions(url: str) -> set[str]:
    rows = await query(
        url,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'positions'::regclass",
    )
    return {r["relname"] for r in rows}


async def home_of(url: str, t: datetime) -> str:
    """The partition that physically holds the fix at time t."""
    rows = await query(
        url, "SELECT tableoid::regclass::text AS p FROM positions WHERE fix_time = $1", t
    )
    assert len(rows) == 1
    name: str = rows[0]["p"]
    return name


@pytest.fixture
async def store(postgis_url: str) -> AsyncIterator[PostgisStore]:
    opened = PostgisStore(postgis_url, min_size=1, max_size=2)
    await opened.open()
    yield opened
    await opened.close()


async def test_partitions_exist_ahead_and_creation_is_idempotent(
    store: PostgisStore, postgis_url: str
) -> None:
    expected = {partition(TODAY + timedelta(days=d)) for d in range(-2, 8)}
    assert expected | {"positions_default"} == await partitions(postgis_url)
    assert await store.ensure_partitions(NOW) == []
    # The periodic call rolls the window forward.
    later = await store.ensure_partitions(NOW + timedelta(days=3))
    assert later == [partition(TODAY + timedelta(days=d)) for d in (8, 9, 10)]


async def test_fix_without_partition_lands_in_default_and_is_kept(
    store: PostgisStore, postgis_url: str
) -> None:
    bus = (await store.add_device("bus-1", "h")).id
    past, future = date(2001, 9, 9), TODAY + timedelta(days=400)
    fixes = [FixIn(at(past), 1.0, 2.0), FixIn(at(future), 3.0, 4.0), FixIn(at(TODAY), 5.0, 6.0)]
    result = await store.insert_fixes(bus, fixes, NOW)
    assert (result.accepted, result.duplicates) == (3, 0)
    assert await home_of(postgis_url, at(past)) == "positions_default"
    assert await home_of(postgis_url, at(future)) == "positions_default"
    assert await home_of(postgis_url, at(TODAY)) == partition(TODAY)
    # Dedupe holds in the default partition too.
    again = await store.insert_fixes(bus, fixes, NOW)
    assert (again.accepted, again.duplicates) == (0, 3)

    # Creating the partition later moves the stray fixes into it; none is lost.
    created = await store.ensure_partitions(at(past), days_behind=0, days_ahead=0)
    assert created == [partition(past)]
    assert await home_of(postgis_url, at(past)) == partition(past)
    assert await count_fixes(store, bus) == 3
    assert await store.track(bus, at(past, 0), at(past, 23)) == [fixes[0]]


async def test_retention_drops_old_partitions_and_old_strays(
    store: PostgisStore, postgis_url: str
) -> None:
    bus = (await store.add_device("bus-1", "h")).id
    old_days = [TODAY - timedelta(days=d) for d in (95, 94, 93)]
    await store.ensure_partitions(at(old_days[1]), days_behind=1, days_ahead=1)
    keep = [FixIn(at(TODAY), 1.0, 1.0), FixIn(at(TODAY - timedelta(days=89)), 1.0, 1.0)]
    drop = [FixIn(at(day), 1.0, 1.0) for day in old_days] + [FixIn(at(date(2001, 1, 1)), 1.0, 1.0)]
    await store.insert_fixes(bus, keep + drop, NOW)
    assert await count_fixes(store) == 6

    expired = await store.expire_positions(90, now=NOW)
    assert sorted(expired.partitions) == sorted(partition(d) for d in old_days)
    assert expired.rows == 1  # the 2001 fix, from the default partition
    assert not set(expired.partitions) & await partitions(postgis_url)
    assert await count_fixes(store) == 2
    assert await store.track(bus, at(TODAY, 0), at(TODAY, 23)) == [keep[0]]
    [live] = await store.live_positions()  # the live position is not history
    assert live.fix == keep[0]
    assert await store.expire_positions(90, now=NOW) == Expired()


async def test_migrations_are_idempotent(store: PostgisStore, postgis_url: str) -> None:
    assert await store.migrate() == []
    rows = await query(postgis_url, "SELECT version, name FROM schema_migrations")
    assert sorted((r["version"], r["name"]) for r in rows) == [
        (m.version, m.name) for m in migrations.available("postgis")
    ]


async def test_concurrent_starters_migrate_once(postgis_url: str) -> None:
    results = await asyncio.gather(*(PostgisStore(postgis_url).migrate() for _ in range(3)))
    assert sorted(results) == [[], [], ALL]


async def test_open_without_migrate_names_the_missing_migration(
    postgis_url: str, tmp_path: Path
) -> None:
    # What a server start does: check only, and say what to run.
    unmigrated = open_store(postgis_url, tmp_path, migrate=False)
    with pytest.raises(SchemaNotCurrent, match="0001_init") as caught:
        await unmigrated.open()
    assert caught.value.missing == ALL
    assert "bustracker migrate" in str(caught.value)

    assert await PostgisStore(postgis_url).migrate() == ALL
    checked = open_store(postgis_url, tmp_path, migrate=False)
    await checked.open()  # now current: the server starts
    await checked.ping()
    await checked.close()
