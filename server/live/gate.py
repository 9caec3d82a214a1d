"""How many riders' streams one process takes: in all, per address, within its descriptors.

Riders are anonymous, so nothing but these counts stops one address (or a
botnet) from holding every file descriptor the process has, and with them
the agents' ingest and the operators' console. So:

- one client address holds at most PUBLIC_STREAMS_PER_ADDRESS public streams;
- one client address tries at most PUBLIC_CONNECTS of them in a period (a token
  bucket per address, in this process; every try counts, let in or not): a
  rider turned away cannot make reconnecting its flood, each new stream costing
  a snapshot and each refusal a handshake. Past its budget an address is
  ``spent``: its refusals are slowed (server/live/door.py);
- the process holds at most PUBLIC_STREAMS_MAX of them, and never more than
  its descriptor limit (``RLIMIT_NOFILE``) minus FD_RESERVE: what is left is
  for ingest, operators, the database and Redis.

Operators' streams are not counted here (they are few, signed in, and rate
limited). Past a cap, a WebSocket is closed with 1013 (try again later) and
SSE answers 503 with ``Retry-After``; both carry the reason.
"""

from __future__ import annotations

import resource
from collections import Counter

from server.live.budget import MessageBudget

# Past this many addresses, buckets that have refilled (addresses gone quiet) are dropped.
_BUCKETS_MAX = 10_000

RETRY_AFTER_S = 30


def descriptor_limit() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


class PublicGate:
    def __init__(
        self,
        *,
        total: int,
        per_address: int,
        fd_reserve: int,
        fd_limit: int,
        connects: tuple[int, float] = (1 << 30, 1.0),
    ) -> None:
        self.total = max(0, min(total, fd_limit - fd_reserve))
        self.per_address = per_address
        self._connects = connects
        self._buckets: dict[str, MessageBudget] = {}
        self._by_address: Counter[str] = Counter()
        self.open = 0
        self.refused = 0

    def refusal(self, address: str) -> str | None:
        """Why a stream from ``address`` would be refused now, counting nothing; None if not."""
        if self._by_address[address] >= self.per_address:
            return f"too many public streams from your address (at most {self.per_address})"
        if self.open >= self.total:
            return "too many public streams on this server; retry later"
        return None

    def admit(self, address: str) -> str | None:
        """None if a stream from ``address`` may open (and is counted); else why not."""
        within_budget = self._bucket(address).take()
        reason = self.refusal(address)
        if reason is None and not within_budget:
            reason = f"too many new public streams from your address; retry in {RETRY_AFTER_S} s"
        if reason is not None:
            self.refused += 1
            return reason
        self._by_address[address] += 1
        self.open += 1
        return None

    def spent(self, address: str) -> bool:
        """True when ``address`` has tried more streams than its budget lets it now."""
        bucket = self._buckets.get(address)
        return bucket is not None and bucket.wait_s() > 0.0

    def _bucket(self, address: str) -> MessageBudget:
        bucket = self._buckets.get(address)
        if bucket is None:
            if len(self._buckets) >= _BUCKETS_MAX:
                self._buckets = {a: b for a, b in self._buckets.items() if not b.full()}
            bucket = self._buckets[address] = MessageBudget(*self._connects)
        return bucket

    def release(self, address: str) -> None:
        self._by_address[address] -= 1
        if self._by_address[address] <= 0:
            del self._by_address[address]
        self.open -= 1
