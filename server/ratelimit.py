"""Rate limits keyed by authenticated identity, shared by all processes through Redis.

Built on ``limits``: a moving window, atomic in Redis (a Lua script), so two
replicas behind nginx count one device's requests together. Without
REDIS_URL the counters live in this process's memory.
"""

from __future__ import annotations

import logging
import math
import time
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


class Limiter:
    def __init__(self, redis_url: str | None = None) -> None:
        uri = f"async+{redis_url}" if redis_url else "async+memory://"
        storage = storage_from_string(uri)
        # Both async backends we build support the moving window.
        assert isinstance(storage, Storage) and isinstance(storage, MovingWindowSupport)
        self._storage: Storage = storage
        self._strategy = MovingWindowRateLimiter(storage)
        self._items: dict[RateLimit, RateLimitItem] = {}

    def _item(self, rate: RateLimit) -> RateLimitItem:
        item = self._items.get(rate)
        if item is None:
            item = RateLimitItemPerSecond(rate.count, rate.per_seconds)
            self._items[rate] = item
        return item

    async def hit(self, rate: RateLimit, scope: str, identity: str) -> Decision:
        """Count one request of ``identity`` against ``rate``.

        A Redis outage must not take ingest down with it: the request is let
        through (and logged) rather than answered 503, since the store is the
        part whose availability matters for keeping data.
        """
        item = self._item(rate)
        try:
            allowed = await self._strategy.hit(item, scope, identity)
            stats = await self._strategy.get_window_stats(item, scope, identity)
        except Exception as exc:  # the storage backends raise their own error types
            log.warning("rate limiter unavailable, letting request through: %s", exc)
            return Decision(True, rate.count, rate.count, 0, rate.policy())
        reset = max(0, math.ceil(stats.reset_time - time.time()))
        return Decision(allowed, rate.count, max(0, stats.remaining), reset, rate.policy())

    async def reset(self) -> None:
        await self._storage.reset()

    async def ping(self) -> bool:
        try:
            return bool(await self._storage.check())
        except Exception:
            return False
