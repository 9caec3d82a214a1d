"""The one interface every status output implements."""

from __future__ import annotations

from typing import Protocol

from agent.status.snapshot import StatusSnapshot


class StatusSink(Protocol):
    def publish(self, snapshot: StatusSnapshot) -> None:
        """Show this tick's snapshot. Called from the runner's main loop once per
        ``status.interval_s``, so it must return quickly; raising is allowed (the
        runner logs it and goes on), blocking is not."""
        ...

    def close(self) -> None:
        """Release what the sink holds; called once, after the last ``publish``."""
        ...
