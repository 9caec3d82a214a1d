"""The maintenance worker on SQLite and on PostGIS: upkeep, the fleet-offline alert, the lock.

One pass keeps the store (partitions ahead, RETENTION_DAYS, statistics) and
counts the fleet's states; the offline alert is sent once when more than 10%
of the buses in service go offline and once when they are back, never on
every pass; a second worker skips its pass while the first holds the lock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from server.model import FixIn
from server.settings import Settings
from server.store import Store, open_store
from server.worker import Worker
from tests.server.stored import count_fixes
from tests.server.test_store_contract import database_url

__all__ = ["database_url"]  # the contract suite's sqlite/postgis parametrisation

NOW = datetime.now(UTC).replace(microsecond=0)


class ListAlerts:
    """The alerts a worker sent, in order (an in-memory destination)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def send(self, subject: str, body: str) -> None:
        self.sent.append((subject, body))


@pytest.fixture
async def store(database_url: str | None, tmp_path: Path) -> AsyncIterator[Store]:
    opened = open_store(database_url, tmp_path / "data", pool_size=4)
    await opened.open()
    yield opened
    await opened.close()


def settings(tmp_path: Path) -> Settings:
    return Settings().with_values(data_dir=tmp_path / "data", retention_days=90)


async def fleet(store: Store, fresh: int, stale: int) -> list[int]:
    """``fresh`` buses heard from a minute ago and ``stale`` ones an hour ago; the stale ids."""
    stale_ids = []
    for i in range(fresh + stale):
        bus = (await store.add_device(f"bus-{i}", f"hash-{i}")).id
        heard = NOW - (timedelta(hours=1) if i >= fresh else timedelta(minutes=1))
        await store.insert_fixes(bus, [FixIn(heard, 45.0, 9.0)], heard)
        if i >= fresh:
            stale_ids.append(bus)
    return stale_ids


async def test_offline_alert_is_raised_once_and_cleared_once(store: Store, tmp_path: Path) -> None:
    stale = await fleet(store, fresh=8, stale=2)
    # Neither a revoked unit nor one out of service is a bus missing from the road.
    lost = (await store.add_device("bus-lost", "hash-lost")).id
    await store.revoke_device(lost)
    parked = (await store.add_device("bus-parked", "hash-parked")).id
    await store.update_device(parked, in_service=False)
    for bus in (lost, parked):
        await store.insert_fixes(bus, [FixIn(NOW - timedelta(days=2), 45, 9)], NOW)
    alerts = ListAlerts()
    worker = Worker(store, settings(tmp_path), alerts)

    first = await worker.run_pass(NOW)
    assert first.health is not None
    assert (first.health.offline, first.health.in_service) == (2, 10)
    assert first.alert == "raised"
    assert alerts.sent[0][0] == "bustracker: 2 of 10 buses offline (20%)"
    assert "offline 2" in alerts.sent[0][1] and "out_of_service 1" in alerts.sent[0][1]
    assert (await worker.run_pass(NOW)).alert is None
    assert len(alerts.sent) == 1, "an alert already raised is not sent again"

    back = NOW + timedelta(seconds=30)
    await store.insert_fixes(stale[0], [FixIn(back, 45.1, 9.0)], back)
    # 1 of 10 is 10%: not more than 10%, so the alert clears.
    cleared = await worker.run_pass(back)
    assert cleared.alert == "cleared"
    assert alerts.sent[1][0] == "bustracker: all clear, 1 of 10 offline"
    metrics = worker.metrics
    assert metrics.offline_alert._value.get() == 0
    assert metrics.vehicles.labels("offline")._value.get() == 1
    assert metrics.vehicles.labels("out_of_service")._value.get() == 1


async def test_a_pass_keeps_the_store(
    store: Store, database_url: str | None, tmp_path: Path
) -> None:
    bus = (await store.add_device("bus-1", "hash-1")).id
    old, recent = NOW - timedelta(days=120), NOW - timedelta(minutes=1)
    if database_url is not None:
        await store.ensure_partitions(old, days_behind=0, days_ahead=0)
    await store.insert_fixes(bus, [FixIn(old, 45.0, 9.0), FixIn(recent, 45.1, 9.0)], recent)
    worker = Worker(store, settings(tmp_path), ListAlerts())

    # A day on: the store's open() made this week's partitions, the pass makes the next day's.
    report = await worker.run_pass(NOW + timedelta(days=1))
    assert report.upkeep
    assert await count_fixes(store, bus) == 1
    if database_url is None:
        assert report.expired.rows == 1
    else:
        # Whole days go as partitions; a week ahead is created.
        assert report.expired.partitions == (f"positions_{old:%Y%m%d}",)
        week = NOW + timedelta(days=8)
        assert report.created == [f"positions_{week:%Y%m%d}"]
    assert worker.metrics.database_bytes._value.get() == await store.database_bytes() > 0
    # The slow steps wait six hours; the fleet is counted on every pass.
    second = await worker.run_pass(NOW)
    assert not second.upkeep and second.health is not None


async def test_a_second_worker_skips_while_the_first_holds_the_lock(
    store: Store, database_url: str | None, tmp_path: Path
) -> None:
    # Another process's store on the same database: its lock is what excludes.
    other = open_store(database_url, tmp_path / "data", pool_size=2)
    await other.open()
    try:
        worker = Worker(other, settings(tmp_path), ListAlerts())
        async with store.maintenance_lock() as mine:
            assert mine
            assert not (await worker.run_pass(NOW)).locked
            async with other.maintenance_lock() as theirs:
                assert not theirs
        assert worker.metrics.passes.labels("skipped")._value.get() == 1
        # Released with the block: the next pass runs.
        assert (await worker.run_pass(NOW)).locked
        assert worker.metrics.passes.labels("ok")._value.get() == 1
    finally:
        await other.close()
