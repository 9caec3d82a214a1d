"""The channels backend: in memory for one process, Redis pub/sub between processes.

Litestar's Redis pub/sub backend ends its event stream on the first connection
error, and the channels plugin does not restart it: one Redis restart would
silence the live bus of every process until they restart too. The subclass
here reconnects with backoff and reports each resumption, so the hub can
reload from the database what it missed while Redis was away.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable, Iterable
from typing import Any

from litestar.channels.backends.base import ChannelsBackend
from litestar.channels.backends.memory import MemoryChannelsBackend
from litestar.channels.backends.redis import RedisChannelsPubSubBackend
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

RETRY_MIN_S = 0.2
RETRY_MAX_S = 5.0


class ReconnectingRedisPubSubBackend(RedisChannelsPubSubBackend):
    def __init__(self, *, redis: Redis, on_resume: Callable[[], None]) -> None:
        super().__init__(redis=redis, key_prefix="BUSTRACKER_LIVE")
        self._on_resume = on_resume
        self._wanted: list[str] = []
        self._resubscribe = False

    async def subscribe(self, channels: Iterable[str]) -> None:
        channels = list(channels)
        self._wanted = sorted({*self._wanted, *channels})
        try:
            await super().subscribe(channels)
        except (RedisError, OSError) as exc:
            # A server that cannot start because Redis is down would also stop
            # ingest; start without the shared bus and let stream_events retry.
            log.warning("live bus: Redis unavailable (%s); retrying in the background", exc)
            self._resubscribe = True
            self._has_subscribed.set()

    async def stream_events(self) -> AsyncGenerator[tuple[str, Any], None]:
        delay = RETRY_MIN_S
        while True:
            if self._resubscribe:
                try:
                    # Re-subscribing reconnects; only once it succeeds is it safe
                    # to reload from the store without leaving a gap.
                    await self._pub_sub.subscribe(*self._wanted)
                except (RedisError, OSError):
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_S)
                    continue
                self._resubscribe = False
                log.warning("live bus: Redis subscription restored")
                delay = RETRY_MIN_S
                self._on_resume()
            try:
                async for event in super().stream_events():
                    yield event
            except (RedisError, OSError) as exc:
                log.warning("live bus: Redis subscription lost (%s); retry in %.1f s", exc, delay)
                self._resubscribe = True
                await asyncio.sleep(delay)


def redis_client(redis_url: str) -> Redis:
    # health_check_interval pings an idle subscription, so a dead Redis is noticed
    # in seconds rather than at the next publish.
    return Redis.from_url(redis_url, socket_connect_timeout=2, health_check_interval=10)


def make_backend(redis: Redis | None, on_resume: Callable[[], None]) -> ChannelsBackend:
    if redis is None:
        return MemoryChannelsBackend()
    return ReconnectingRedisPubSubBackend(redis=redis, on_resume=on_resume)
