"""One snapshot to every sink; a sink that fails is logged and the others go on.

A status sink is for people and for the service manager, never a reason to stop
capturing: an unwritable status file must not cost the watchdog, and a broken
LED must not cost the status file. Failures of one kind (the sink, the call and
the exception's type) are logged once, then at most once per ``REPEAT_LOG_S``
with a count, so a month of a read-only status directory is a few lines a day in the
journal, not one per second; when the sink works again that is said once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from agent.status.sink import StatusSink
from agent.status.snapshot import StatusSnapshot

log = logging.getLogger(__name__)

REPEAT_LOG_S = 300.0


@dataclass
class _Failing:
    kind: str  # the call and the exception's type
    logged_at: float
    since_log: int = 0  # failures not logged since logged_at


def sink_name(sink: StatusSink) -> str:
    return type(sink).__name__


class Fanout:
    def __init__(
        self, sinks: Iterable[StatusSink], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.sinks = list(sinks)
        self.clock = clock
        self._failing: dict[int, _Failing] = {}  # by position in self.sinks

    def publish(self, snapshot: StatusSnapshot) -> None:
        for i, sink in enumerate(self.sinks):
            try:
                sink.publish(snapshot)
            except Exception as exc:
                self._failed(i, sink, "publish", exc)
            else:
                self._worked(i, sink)

    def close(self) -> None:
        for i, sink in enumerate(self.sinks):
            try:
                sink.close()
            except Exception as exc:
                self._failed(i, sink, "close", exc)

    def _failed(self, i: int, sink: StatusSink, what: str, exc: Exception) -> None:
        now, kind = self.clock(), f"{what}: {type(exc).__name__}"
        state = self._failing.get(i)
        if state is not None and state.kind == kind:
            if now - state.logged_at < REPEAT_LOG_S:
                state.since_log += 1
                return
            log.warning(
                "status sink %s still failing (%d more times): %s",
                sink_name(sink),
                state.since_log + 1,
                exc,
            )
            state.logged_at, state.since_log = now, 0
            return
        self._failing[i] = _Failing(kind, now)
        # An OSError is the world (disk, socket); anything else is a bug in the sink.
        log.warning(
            "status sink %s: %s failed: %s",
            sink_name(sink),
            what,
            exc,
            exc_info=not isinstance(exc, OSError),
        )

    def _worked(self, i: int, sink: StatusSink) -> None:
        if self._failing.pop(i, None) is not None:
            log.info("status sink %s works again", sink_name(sink))
