"""An in-memory sink: every snapshot it was given, in order.

A real sink, not a stand-in: tests hand it to a real Runner to read the state
sequence exactly (the status file shows only the latest state, and a poller can
miss a short one), and a later dashboard or LED test can do the same.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from agent.status.snapshot import StatusSnapshot


def collapsed(values: list[str]) -> list[str]:
    """Runs of the same value once: ``[a, a, b, a] -> [a, b, a]``."""
    return [v for i, v in enumerate(values) if i == 0 or values[i - 1] != v]


class ListSink:
    def __init__(self, maxlen: int | None = 100_000) -> None:
        self._items: deque[StatusSnapshot] = deque(maxlen=maxlen)
        self._changed = threading.Condition()
        self.closed = False

    def publish(self, snapshot: StatusSnapshot) -> None:
        with self._changed:
            self._items.append(snapshot)
            self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            self.closed = True
            self._changed.notify_all()

    @property
    def snapshots(self) -> list[StatusSnapshot]:
        with self._changed:
            return list(self._items)

    def states(self) -> list[str]:
        return collapsed([s.state for s in self.snapshots])

    def gps_states(self) -> list[str]:
        return collapsed([s.gps for s in self.snapshots])

    def uplink_states(self) -> list[str]:
        return collapsed([s.uplink for s in self.snapshots])

    def wait_for(
        self, predicate: Callable[[StatusSnapshot], bool], timeout: float
    ) -> StatusSnapshot | None:
        """The first snapshot (already given or still to come) that matches, or None."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                items = list(self._items)
                for snap in items[seen:]:
                    if predicate(snap):
                        return snap
                seen = len(items)
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    return None
                self._changed.wait(left)
