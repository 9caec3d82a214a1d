"""Idle ticks: a live source yields None at least every ``idle_s`` while nothing arrives.

The runner updates its state and feeds the systemd watchdog on those Nones,
so a source must never block longer than that, whatever it waits for
(a connect, a read, a reconnect delay).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

# How often a blocked source looks at its stop event.
STOP_POLL_S = 0.25


class IdleTicks:
    def __init__(self, idle_s: float) -> None:
        self.idle_s = idle_s
        self._next = 0.0  # monotonic instant when an idle None is due

    def restart(self) -> None:
        """Something was yielded: the next idle None is due ``idle_s`` from now."""
        self._next = time.monotonic() + self.idle_s

    def due(self) -> bool:
        """True (and restarted) when an idle None is owed."""
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self.idle_s
        return True

    def slice(self, limit: float = STOP_POLL_S) -> float:
        """How long the next blocking call may wait: until ``limit``, the next tick
        or the next look at the stop event, whichever comes first."""
        return max(0.01, min(limit, self._next - time.monotonic(), STOP_POLL_S))

    def pause(self, stop: threading.Event, seconds: float) -> Iterator[None]:
        """Wait ``seconds`` (or until ``stop``), yielding the idle Nones owed meanwhile."""
        deadline = time.monotonic() + seconds
        while not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or stop.wait(self.slice(remaining)):
                return
            if self.due():
                yield None
