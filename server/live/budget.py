"""A rider's message budget: a token bucket in the socket's own state (also per address, gate.py).

Each subscribe re-renders a snapshot of the fleet for that rider, so a rider
sending them in a loop spends the event loop that ingest needs. A bucket per
socket costs two floats and no shared state (no Redis): a rider who follows
the protocol (a subscribe when the route changes, a ping now and then) never
reaches it; one who does has its messages read at the bucket's pace
(``wait_s``), so the rest of its flood waits in its own socket (D73).
"""

from __future__ import annotations

import time


class MessageBudget:
    def __init__(self, count: int, per_seconds: float) -> None:
        self.capacity = float(count)
        self.refill_per_s = count / per_seconds
        self._tokens = self.capacity
        self._at = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.refill_per_s)
        self._at = now

    def full(self) -> bool:
        self._refill()
        return self._tokens >= self.capacity

    def wait_s(self) -> float:
        """Seconds until one more message fits the budget (0.0 when one does now)."""
        self._refill()
        return max(0.0, (1.0 - self._tokens) / self.refill_per_s)

    def take(self) -> bool:
        """True if one more message fits the budget now (and spends it)."""
        self._refill()
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True
