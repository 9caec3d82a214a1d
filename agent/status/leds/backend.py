"""The interface every LED backend implements, and its one error."""

from __future__ import annotations

from typing import Protocol

from agent.status.leds.patterns import Led, Pattern


class LedError(Exception):
    """An LED can't be driven; the message names the LED and what to check."""


class LedBackend(Protocol):
    def show(self, led: Led, pattern: Pattern) -> None:
        """Start showing ``pattern`` on ``led``; called only when it changes."""
        ...

    def close(self) -> None: ...
