"""Group commit: batches that wait for the database go in together, each answered as its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from server.model import FixIn
from server.store import Store
from server.store.groups import Grouper
from server.store.postgis import PostgisStore
from server.store.sqlite import SqliteStore
from tests.server.stored import count_fixes

BASE = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0)


# The grouping itself, with a workload that records what ran together ----------------


class Workload:
    """Runs groups of ints when released; ``groups`` records each group as it ran."""

    def __init__(self) -> None:
        self.groups: list[list[int]] = []
        self.release = asyncio.Event()
        self.fail_on: int | None = None

    async def run_group(self, jobs: list[int]) -> list[str]:
        self.groups.append(jobs)
        await self.release.wait()
        if self.fail_on in jobs:
            raise ValueError(f"bad job {self.fail_on}")
        return [f"done {j}" for j in jobs]


async def turns(n: int = 3) -> None:
    """Let the event loop run everything that is ready (tasks start a turn after creation)."""
    for _ in range(n):
        await asyncio.sleep(0)


def grouper(work: Workload, *, isolate: bool = True, max_rows: int = 100) -> Grouper[int, str]:
    return Grouper(
        work.run_group,
        size=lambda job: 1,
        isolate=lambda exc: isolate,
        max_running=1,
        max_rows=max_rows,
    )


async def test_a_lone_job_runs_at_once_and_jobs_that_wait_go_together() -> None:
    work = Workload()
    g = grouper(work)
    first = asyncio.create_task(g.submit(1))
    await turns()
    assert work.groups == [[1]]  # nothing was waiting: no delay, no group
    rest = [asyncio.create_task(g.submit(n)) for n in (2, 3, 4)]
    await turns()
    work.release.set()
    assert await first == "done 1"
    assert await asyncio.gather(*rest) == ["done 2", "done 3", "done 4"]
    assert work.groups == [[1], [2, 3, 4]]
    assert (g.statements, g.jobs) == (2, 4)


async def test_groups_stop_at_max_rows() -> None:
    work = Workload()
    g = grouper(work, max_rows=2)
    tasks = [asyncio.create_task(g.submit(n)) for n in range(5)]
    await turns()
    work.release.set()
    await asyncio.gather(*tasks)
    assert work.groups == [[0], [1, 2], [3, 4]]


async def test_a_request_that_went_away_is_not_sent() -> None:
    work = Workload()
    g = grouper(work)
    first = asyncio.create_task(g.submit(1))
    await turns()
    gone = asyncio.create_task(g.submit(2))
    kept = asyncio.create_task(g.submit(3))
    await turns()
    gone.cancel()
    work.release.set()
    await first
    assert await kept == "done 3"
    assert work.groups == [[1], [3]]


async def group_behind_one(work: Workload, g: Grouper[int, str]) -> list[object]:
    """Job 1 runs alone; 2, 3 and 4 arrive while it runs and go as one group."""
    first = asyncio.create_task(g.submit(1))
    await turns()
    rest = [asyncio.create_task(g.submit(n)) for n in (2, 3, 4)]
    await turns()
    work.release.set()
    await first
    return await asyncio.gather(*rest, return_exceptions=True)


async def test_one_bad_job_fails_alone() -> None:
    work = Workload()
    work.fail_on = 3
    results = await group_behind_one(work, grouper(work, isolate=True))
    assert results[0] == "done 2" and results[2] == "done 4"
    assert isinstance(results[1], ValueError)


async def test_an_outage_fails_the_whole_group() -> None:
    work = Workload()
    work.fail_on = 3
    results = await group_behind_one(work, grouper(work, isolate=False))
    assert all(isinstance(r, ValueError) for r in results)
    assert len(work.groups) == 2  # not retried one by one


async def test_drain_stores_everything_taken_in_before_shutdown() -> None:
    work = Workload()
    g = grouper(work)
    tasks = [asyncio.create_task(g.submit(n)) for n in range(3)]
    await turns()
    assert work.groups == [[0]]  # 1 and 2 still wait
    work.release.set()
    await g.drain()
    assert work.groups == [[0], [1, 2]]
    assert await asyncio.gather(*tasks) == ["done 0", "done 1", "done 2"]


async def test_a_group_that_miscounts_fails_its_jobs_instead_of_leaving_them_waiting() -> None:
    async def loses_one(jobs: list[int]) -> list[str]:
        return [f"done {j}" for j in jobs[1:]]

    g: Grouper[int, str] = Grouper(
        loses_one, size=lambda job: 1, isolate=lambda exc: True, max_running=1, max_rows=10
    )
    results = await asyncio.gather(*(g.submit(n) for n in range(3)), return_exceptions=True)
    assert all(isinstance(r, Exception) for r in results)


# The grouped statement (PostGIS) and transaction (SQLite) on the real stores ---------------


@pytest.fixture(params=["sqlite", pytest.param("postgis", marks=pytest.mark.postgis)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    opened: PostgisStore | SqliteStore
    if request.param == "postgis":
        # One statement at a time, so that concurrent batches always form groups.
        opened = PostgisStore(request.getfixturevalue("postgis_url"), group_statements=1)
    else:
        opened = SqliteStore(tmp_path / "bustracker.sqlite3")
    await opened.open()
    yield opened
    await opened.close()


def fixes(first_s: int, n: int, lat: float = 45.0) -> list[FixIn]:
    return [
        FixIn(t=BASE + timedelta(seconds=first_s + i), lat=lat + i * 1e-4, lon=9.0)
        for i in range(n)
    ]


async def test_grouped_batches_are_each_answered_as_their_own(store: Store) -> None:
    buses = [(await store.add_device(f"bus-{i}", f"hash-{i}", route="7")).id for i in range(30)]
    received = datetime.now(UTC)
    # Every bus sends a batch; some also resend part of it (a retry racing the original).
    jobs = [(bus, fixes(0, 10, lat=40.0 + k)) for k, bus in enumerate(buses)]
    jobs += [(bus, fixes(5, 10, lat=40.0 + k)) for k, bus in enumerate(buses[:5])]
    results = await asyncio.gather(*(store.insert_fixes(b, f, received) for b, f in jobs))

    stats = store.group_stats()
    assert stats.batches > stats.statements  # groups did form
    for bus in buses[5:]:
        assert await count_fixes(store, bus) == 10
    for bus in buses[:5]:
        assert await count_fixes(store, bus) == 15  # the overlap stored once
    by_bus: dict[int, list[int]] = {}
    for (bus, _), result in zip(jobs, results, strict=True):
        assert result.accepted + result.duplicates == 10
        by_bus.setdefault(bus, []).append(result.accepted)
    assert all(sum(counts) == (15 if len(counts) == 2 else 10) for counts in by_bus.values())

    # Each bus's live position is its newest fix, whichever batch carried it.
    live = {p.device_id: p for p in await store.live_positions()}
    for k, bus in enumerate(buses):
        newest = BASE + timedelta(seconds=14 if k < 5 else 9)
        assert live[bus].fix.t == newest
        assert live[bus].name == f"bus-{k}" and live[bus].route == "7"
    moved = [r.live for r in results if r.live is not None]
    assert {p.device_id for p in moved} == set(buses)
    assert all(p.fix.t == live[p.device_id].fix.t for p in moved if p.device_id in buses[5:])

    # Sent again, all of it: nothing new is stored and nothing moves back.
    again = await asyncio.gather(*(store.insert_fixes(b, f, received) for b, f in jobs))
    assert all(r.accepted == 0 and r.duplicates == 10 for r in again)
    assert all(r.live is None for r in again)


async def test_a_batch_for_an_unknown_device_fails_alone(store: Store) -> None:
    bus = (await store.add_device("bus-1", "hash-1")).id
    other = (await store.add_device("bus-2", "hash-2")).id
    blocker = asyncio.create_task(store.insert_fixes(bus, fixes(100, 3), datetime.now(UTC)))
    await turns()
    results = await asyncio.gather(
        store.insert_fixes(bus, fixes(0, 10), datetime.now(UTC)),
        store.insert_fixes(10**9, fixes(0, 10), datetime.now(UTC)),
        store.insert_fixes(other, fixes(0, 10), datetime.now(UTC)),
        return_exceptions=True,
    )
    await blocker
    assert isinstance(results[1], LookupError)
    assert [getattr(r, "accepted", None) for r in (results[0], results[2])] == [10, 10]
    assert await count_fixes(store) == 23


async def test_closing_stores_what_was_already_taken_in(store: Store) -> None:
    bus = (await store.add_device("bus-1", "hash-1")).id
    sent = [
        asyncio.create_task(store.insert_fixes(bus, fixes(k * 10, 10), datetime.now(UTC)))
        for k in range(20)
    ]
    await turns()  # every batch is submitted; most still wait behind the first group
    await store.close()
    results = await asyncio.gather(*sent)
    assert [r.accepted for r in results] == [10] * 20
    await store.open()  # the fixture closes it again
    assert await count_fixes(store, bus) == 200


async def test_within_a_group_the_first_duplicate_of_each_batch_wins(store: Store) -> None:
    # A lone batch is the contract suite's case; here the batches run grouped, where
    # each batch's rows are merged with others' before one statement stores them.
    buses = [(await store.add_device(f"bus-{i}", f"hash-{i}")).id for i in range(20)]
    received = datetime.now(UTC)
    t = BASE + timedelta(seconds=30)
    batches = [
        [FixIn(t=t, lat=10.0 + k, lon=9.0), FixIn(t=t, lat=50.0 + k, lon=9.0)]
        for k in range(len(buses))
    ]
    results = await asyncio.gather(
        *(
            store.insert_fixes(bus, batch, received)
            for bus, batch in zip(buses, batches, strict=True)
        )
    )
    assert store.group_stats().batches > store.group_stats().statements  # groups did form
    assert all((r.accepted, r.duplicates) == (1, 1) for r in results)
    live = {p.device_id: p for p in await store.live_positions()}
    for k, bus in enumerate(buses):
        [stored] = await store.track(bus, t, t + timedelta(seconds=1))
        assert stored.lat == 10.0 + k
        assert live[bus].fix.lat == 10.0 + k
