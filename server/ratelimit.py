"""Rate limits keyed by authenticated identity, shared by all processes through Redis.

Built on ``limits``: a moving window, atomic in Redis (a Lua script), so two
replicas behind nginx count one device's requests together. Without
REDIS_URL the counters live in this process's memory (``MemoryWindows``).
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import MovingWindowSupport, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from server.settings import RateLimit

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_s: int  # seconds until a request slot frees up
    policy: str

    def headers(self) -> dict[str, str]:
        out = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
            "RateLimit-Policy": self.policy,
        }
        if not self.allowed:
            out["Retry-After"] = str(max(1, self.reset_s))
        return out


class MemoryWindows:
    """Moving windows in this process, for when there is no Redis.

    limits' async memory storage re-scans every key through a thread hop
    (``asyncio.to_thread``) after each request: with thousands of buses that
    background churn cost more CPU than ingest itself. Here each key keeps a
    deque of hit times, trimmed on use; one event loop owns it, so no locks.
    """

    # Idle keys are swept once per this many hits, so memory follows the live fleet.
    SWEEP_EVERY = 10_000

    def __init__(self) -> None:
        self._hits: dict[str, deque[float]] = {}
        self._since_sweep = 0
        self._longest_window_s = 0.0

    def hit(
        self, key: str, count: int, window_s: float, now: float, cost: int = 1
    ) -> tuple[bool, int, float]:
        """Record ``cost`` hits if the window has room: ``(allowed, remaining, reset_at)``."""
        self._longest_window_s = max(self._longest_window_s, window_s)
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - window_s:
            hits.popleft()
        allowed = len(hits) + cost <= count
        if allowed:
            hits.extend([now] * cost)
        self._since_sweep += 1
        if self._since_sweep >= self.SWEEP_EVERY:
            self._sweep(now)
        reset_at = hits[0] + window_s if hits else now
        return allowed, count - len(hits), reset_at

    def peek(self, key: str, count: int, window_s: float, now: float) -> tuple[bool, int, float]:
        """Whether one more hit would fit, recording nothing: ``(allowed, remaining, reset_at)``."""
        hits = self._hits.get(key)
        while hits and hits[0] <= now - window_s:
            hits.popleft()
        used = len(hits) if hits else 0
        reset_at = hits[0] + window_s if hits else now
        return used + 1 <= count, count - used, reset_at

    def _sweep(self, now: float) -> None:
        self._since_sweep = 0
        cutoff = now - self._longest_window_s
        for key in [k for k, v in self._hits.items() if not v or v[-1] <= cutoff]:
            del self._hits[key]

    def clear(self) -> None:
        self._hits.clear()


class Limiter:
    def __init__(self, redis_url: str | None = None) -> None:
        self._memory: MemoryWindows | None = None
        self._storage: Storage | None = None
        if redis_url:
            # limits defaults to coredis for async Redis; we ship redis-py (pyproject).
            storage = storage_from_string(f"async+{redis_url}", implementation="redispy")
            assert isinstance(storage, Storage) and isinstance(storage, MovingWindowSupport)
            self._storage = storage
            self._strategy = MovingWindowRateLimiter(storage)
        else:
            self._memory = MemoryWindows()
        self._items: dict[RateLimit, RateLimitItem] = {}

    def _item(self, rate: RateLimit) -> RateLimitItem:
        item = self._items.get(rate)
        if item is None:
            item = RateLimitItemPerSecond(rate.count, rate.per_seconds)
            self._items[rate] = item
        return item

    async def hit(self, rate: RateLimit, scope: str, identity: str, cost: int = 1) -> Decision:
        """Count one request of ``identity`` against ``rate``; it uses ``cost`` of the budget.

        A cost above the whole budget is refused: it could never fit.

        A Redis outage must not take ingest down with it: the request is let
        through (and logged) rather than answered 503, since the store is the
        part whose availability matters for keeping data.
        """
        now = time.time()
        if self._memory is not None:
            key = f"{scope}/{identity}/{rate.policy()}"
            allowed, remaining, reset_at = self._memory.hit(
                key, rate.count, rate.per_seconds, now, cost
            )
            reset = max(0, math.ceil(reset_at - now))
            return Decision(allowed, rate.count, remaining, reset, rate.policy())
        item = self._item(rate)
        try:
            allowed = await self._strategy.hit(item, scope, identity, cost=cost)
            stats = await self._strategy.get_window_stats(item, scope, identity)
        except Exception as exc:  # the storage backends raise their own error types
            log.warning("rate limiter unavailable, letting request through: %s", exc)
            return Decision(True, rate.count, rate.count, 0, rate.policy())
        reset = max(0, math.ceil(stats.reset_time - time.time()))
        return Decision(allowed, rate.count, max(0, stats.remaining), reset, rate.policy())

    async def check(self, rate: RateLimit, scope: str, identity: str) -> Decision:
        """Whether ``identity`` has room for one more under ``rate``, without counting it.

        For budgets that only failures spend (sign-in guesses): check first, ``hit`` on failure.
        """
        now = time.time()
        if self._memory is not None:
            key = f"{scope}/{identity}/{rate.policy()}"
            allowed, remaining, reset_at = self._memory.peek(key, rate.count, rate.per_seconds, now)
            reset = max(0, math.ceil(reset_at - now))
            return Decision(allowed, rate.count, remaining, reset, rate.policy())
        item = self._item(rate)
        try:
            allowed = await self._strategy.test(item, scope, identity)
            stats = await self._strategy.get_window_stats(item, scope, identity)
        except Exception as exc:
            log.warning("rate limiter unavailable, letting request through: %s", exc)
            return Decision(True, rate.count, rate.count, 0, rate.policy())
        reset = max(0, math.ceil(stats.reset_time - time.time()))
        return Decision(allowed, rate.count, max(0, stats.remaining), reset, rate.policy())

    async def reset(self) -> None:
        if self._memory is not None:
            self._memory.clear()
        elif self._storage is not None:
            await self._storage.reset()

    async def ping(self) -> bool:
        if self._storage is None:
            return True
        try:
            return bool(await self._storage.check())
        except Exception:
            return False
