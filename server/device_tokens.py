"""Finding the device behind a token, with a short cache on the ingest hot path.

Every telemetry request starts with this lookup; caching hits saves a database
round trip and a pool checkout per request. The TTL must outlast an agent's
upload interval (6.6 s at the seed's 10 requests/min) or the cache would
almost never hit, hence DEVICE_CACHE_TTL's default of 30 s. The price is
bounded: a revoked or rotated token keeps working for at most that long on
other server processes (the process that served the revoke forgets at once).
Misses are never cached, so a device added a moment ago reports at once.
"""

from __future__ import annotations

import time

from server.auth import hash_device_token
from server.model import Device
from server.store.base import Store

DEFAULT_TTL_S = 30.0
MAX_ENTRIES = 100_000


class DeviceTokens:
    def __init__(self, store: Store, ttl_s: float = DEFAULT_TTL_S) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._hits: dict[str, tuple[float, Device]] = {}

    async def device(self, token: str) -> Device | None:
        """The active device holding ``token``; raises StoreUnavailable."""
        token_hash = hash_device_token(token)
        now = time.monotonic()
        cached = self._hits.get(token_hash)
        if cached is not None and cached[0] > now:
            return cached[1]
        device = await self._store.device_by_token_hash(token_hash)
        if device is None:
            self._hits.pop(token_hash, None)
            return None
        if len(self._hits) >= MAX_ENTRIES:
            # Tokens are random, so there is no hot subset worth an LRU: start over.
            self._hits.clear()
        self._hits[token_hash] = (now + self._ttl_s, device)
        return device

    def forget(self) -> None:
        """Drop every cached token: call after a revoke or a rotation."""
        self._hits.clear()
