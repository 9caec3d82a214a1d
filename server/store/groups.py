"""Group commit: batches that arrive while the database is busy go in together.

A live fleet sends many small requests (10 fixes each). One statement and one
commit per request pays the database's per-statement and per-commit cost (an
fsync for SQLite) and the driver's per-call cost on every 10 rows. Here at
most ``max_running`` groups run at once; a batch that arrives while they are
all busy waits for the next free slot, together with every other batch that
arrived meanwhile, and they go in as one statement (PostGIS:
``pg_insert.insert_group``) or one transaction (SQLite).

Nothing waits on a timer: when the database keeps up, each batch goes alone
and at once, as before; only under load do groups form, and they grow with
the load. Each request is still answered only after the statement holding
its batch has committed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Generic, NamedTuple, TypeVar

from server.model import FixIn
from server.store.base import StoreUnavailable

# Rows of one group: a busy minute's small batches, one statement well under a second.
GROUP_MAX_ROWS = 5000

J = TypeVar("J")
R = TypeVar("R")


class Job(NamedTuple):
    """One request's batch, waiting to be inserted with others."""

    device_id: int
    fixes: Sequence[FixIn]
    received_at: datetime


class Grouper(Generic[J, R]):
    """Runs jobs in groups through ``run_group``, at most ``max_running`` groups at once.

    ``run_group`` returns one result per job, in order. ``isolate`` decides
    what a failure of a whole group means: when it returns True (an error
    that may come from one job's data, not from the database being away),
    each job of the group is retried in a group of its own so one bad batch
    cannot fail the others; otherwise every job gets the error.
    """

    def __init__(
        self,
        run_group: Callable[[list[J]], Awaitable[Sequence[R]]],
        *,
        size: Callable[[J], int],
        isolate: Callable[[BaseException], bool],
        max_running: int,
        max_rows: int,
    ) -> None:
        if max_running < 1:
            raise ValueError("max_running must be at least 1")
        self._run_group = run_group
        self._size = size
        self._isolate = isolate
        self._max_running = max_running
        self._max_rows = max_rows
        self._waiting: deque[tuple[J, asyncio.Future[R]]] = deque()
        self._running: set[asyncio.Task[None]] = set()
        self.statements = 0  # groups run, for /metrics
        self.jobs = 0

    async def submit(self, job: J) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((job, future))
        self._start()
        return await future

    def _start(self) -> None:
        while self._waiting and len(self._running) < self._max_running:
            group = self._take()
            if not group:
                continue
            task = asyncio.create_task(self._run(group), name="insert-group")
            self._running.add(task)
            task.add_done_callback(self._finished)

    def _take(self) -> list[tuple[J, asyncio.Future[R]]]:
        group: list[tuple[J, asyncio.Future[R]]] = []
        rows = 0
        while self._waiting:
            job, future = self._waiting[0]
            if future.cancelled():  # its request went away before it was sent
                self._waiting.popleft()
                continue
            rows += self._size(job)
            if group and rows > self._max_rows:
                break
            group.append(self._waiting.popleft())
        return group

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._start()

    async def _run(self, group: list[tuple[J, asyncio.Future[R]]]) -> None:
        self.statements += 1
        self.jobs += len(group)
        try:
            results = await self._run_group([job for job, _ in group])
            if len(results) != len(group):  # a waiting request must never hang
                raise RuntimeError(f"{len(results)} results for {len(group)} batches")
        except Exception as exc:
            if len(group) > 1 and self._isolate(exc):
                await asyncio.gather(*(self._alone(job, future) for job, future in group))
                return
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:  # cancelled at shutdown: nobody is left to answer
            for _, future in group:
                if not future.done():
                    future.cancel()
            raise
        for (_, future), result in zip(group, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _alone(self, job: J, future: asyncio.Future[R]) -> None:
        try:
            (result,) = await self._run_group([job])
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
        else:
            if not future.done():
                future.set_result(result)

    async def drain(self) -> None:
        """Run every job submitted so far, then return (a graceful shutdown)."""
        self._start()
        while self._running:
            await asyncio.wait(set(self._running))


def insert_grouper(
    run_group: Callable[[list[Job]], Awaitable[Sequence[R]]], *, max_running: int
) -> Grouper[Job, R]:
    """The stores' grouper: groups sized in fixes, only an outage fails a whole group."""
    return Grouper(
        run_group,
        size=lambda job: len(job.fixes),
        isolate=lambda exc: not isinstance(exc, StoreUnavailable),
        max_running=max_running,
        max_rows=GROUP_MAX_ROWS,
    )
