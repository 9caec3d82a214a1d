"""A client's outbox: what changed since its last frame, one entry per vehicle. No I/O.

Nothing is queued as a rendered frame. The outbox holds *which* vehicles
changed and their newest state; the frame is rendered from the hub's current
snapshot when the client can take it. A client that reads slowly therefore
never has stale positions waiting, and its outbox can never hold more than one
entry per vehicle in the fleet, however long it stalls.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass(slots=True)
class Outbox(Generic[K]):
    touched: dict[K, None] = field(default_factory=dict)  # insertion-ordered set
    states: dict[K, str] = field(default_factory=dict)
    # Changes folded into one already waiting: the work a slow reader saved us.
    superseded: int = 0

    def __bool__(self) -> bool:
        return bool(self.touched or self.states)

    def __len__(self) -> int:
        return len(self.touched.keys() | self.states.keys())

    def touch(self, key: K) -> None:
        """The vehicle moved, appeared or left this client's view."""
        if key in self.touched:
            self.superseded += 1
        else:
            self.touched[key] = None

    def state(self, key: K, state: str) -> None:
        if key in self.states:
            self.superseded += 1
        self.states[key] = state

    def take(self) -> tuple[list[K], dict[K, str]]:
        touched, states = list(self.touched), self.states
        self.touched, self.states = {}, {}
        return touched, states

    def clear(self) -> None:
        self.touched.clear()
        self.states.clear()


def frame_delay(last_sent: float | None, now: float, interval: float) -> float:
    """Seconds to hold the next update frame so a client gets at most 1/interval a second.

    The first change after a quiet spell goes out at once (no added latency);
    only a busy client waits, and meanwhile its changes coalesce.
    """
    if last_sent is None:
        return 0.0
    return max(0.0, last_sent + interval - now)
