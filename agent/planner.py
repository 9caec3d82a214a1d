"""When the next upload may go and how big it may be, and how long a failure waits.

Planning: the next request goes no sooner than ``max(upload.interval_s,
60 / requests_per_minute * (1 + safety_margin))`` after the last answer, and
never sooner than ``RateLimit-Reset / RateLimit-Remaining`` allows. The batch
is ``min(upload.max_batch, X-Max-Batch, self-imposed limit)``; a 413 sets the
self-imposed limit, ten full successful batches double it again.

Failures wait with full jitter, never less than the planned interval, and at
least the server's ``Retry-After`` (capped: a Retry-After of days is a server
bug, not a plan).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from tenacity import RetryCallState
from tenacity.wait import wait_base

from agent.protocol import Limits
from agent.settings import UploadSettings

RETRY_AFTER_MAX_S = 3600.0


class Planner:
    """How big the next batch may be and when it may go."""

    def __init__(self, cfg: UploadSettings) -> None:
        self.cfg = cfg
        self.limits = Limits(requests_per_minute=cfg.requests_per_minute)
        self.self_limit: int | None = None  # set by 413/422, grows back after successes
        self._good = 0

    def observe(self, limits: Limits) -> None:
        self.limits = Limits(
            requests_per_minute=limits.requests_per_minute or self.limits.requests_per_minute,
            max_batch=limits.max_batch or self.limits.max_batch,
            remaining=limits.remaining,
            reset_s=limits.reset_s,
        )

    def batch_size(self) -> int:
        sizes = [self.cfg.max_batch, self.limits.max_batch, self.self_limit]
        return max(1, min(s for s in sizes if s))

    def interval(self) -> float:
        rpm = self.limits.requests_per_minute or self.cfg.requests_per_minute
        return max(self.cfg.interval_s, 60.0 / rpm * (1.0 + self.cfg.safety_margin))

    def next_delay(self) -> float:
        delay = self.interval()
        rem, reset = self.limits.remaining, self.limits.reset_s
        if rem is not None and reset is not None:
            delay = max(
                delay,
                reset * (1.0 + self.cfg.safety_margin) / max(rem, 1) if rem > 0 else reset + 0.5,
            )
        return delay

    def shrink(self, sent: int, server_max: int | None) -> int:
        self.self_limit = server_max if server_max and server_max < sent else max(1, sent // 2)
        self._good = 0
        return self.self_limit

    def success(self, sent: int) -> None:
        if self.self_limit is None or sent < self.self_limit:
            return
        self._good += 1
        if self._good >= 10:  # slow regrowth: a 413 may have been a passing proxy limit
            self._good = 0
            self.self_limit *= 2
            cap = min(s for s in (self.cfg.max_batch, self.limits.max_batch) if s)
            if self.self_limit >= cap:
                self.self_limit = None


class WaitRetryAfter(wait_base):
    """Full jitter, floored by the planned interval and by the server's Retry-After."""

    def __init__(self, jitter: wait_base, floor: Callable[[], float]) -> None:
        self.jitter = jitter
        self.floor = floor

    def __call__(self, retry_state: RetryCallState) -> float:
        wait = max(self.jitter(retry_state), self.floor())
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        after = getattr(exc, "retry_after", None)
        if after is not None:
            after = min(float(after), RETRY_AFTER_MAX_S)
            # A little spread so a fleet told the same date doesn't return as one.
            wait = max(wait, after + random.uniform(0.0, min(after * 0.1, 30.0)))
        return wait
