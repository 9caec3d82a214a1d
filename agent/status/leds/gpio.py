"""LEDs on GPIO lines through libgpiod v2 (the ``gpiod`` package), blinked by a thread.

For LEDs wired straight to GPIO pins without the ``gpio-led`` overlay. A character
device line has no kernel blink, so one thread switches both LEDs at each edge
of their patterns; if the agent hangs the blink freezes (the sysfs backend's
kernel timer doesn't), and the watchdog restarts the agent. The sysfs backend is
the one to prefer; docs/bus-unit.md says how to wire either.

The thread talks to a ``Lines`` object: ``GpiodLines`` on a Pi, any object with
``set(led, lit)`` and ``close()`` elsewhere (a machine without a GPIO chip).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from agent.status.leds.backend import LedError
from agent.status.leds.patterns import Led, Pattern, lit_at, next_change_ms


class Lines(Protocol):
    def set(self, led: Led, lit: bool) -> None: ...

    def close(self) -> None: ...


def _line_key(name: str) -> int | str:
    return int(name) if name.isdigit() else name  # an offset, or a line name from the DT


class GpiodLines:
    """Two output lines of one chip, requested once for the agent's lifetime."""

    def __init__(self, chip: Path, names: dict[Led, str], active_low: bool = False) -> None:
        import gpiod
        from gpiod.line import Direction, Value

        self._value = Value
        if not gpiod.is_gpiochip_device(str(chip)):
            raise LedError(f"{chip} is not a GPIO chip (leds.chip); see `gpiodetect`")
        self.keys = {led: _line_key(name) for led, name in names.items()}
        settings = gpiod.LineSettings(
            direction=Direction.OUTPUT, output_value=Value.INACTIVE, active_low=active_low
        )
        try:
            self._request = gpiod.request_lines(
                str(chip),
                consumer="bustracker-agent",
                config={tuple(self.keys.values()): settings},
            )
        except (OSError, ValueError) as exc:
            raise LedError(
                f"can't request GPIO lines {list(self.keys.values())} on {chip}: {exc}"
            ) from None

    def set(self, led: Led, lit: bool) -> None:
        self._request.set_value(self.keys[led], self._value.ACTIVE if lit else self._value.INACTIVE)

    def close(self) -> None:
        self._request.release()


class BlinkingLeds:
    """Patterns in software: one thread, sleeping until the next edge of either LED."""

    def __init__(self, lines: Lines, clock: Callable[[], float] = time.monotonic) -> None:
        self.lines = lines
        self.clock = clock
        self._patterns: dict[Led, tuple[Pattern, float]] = {}
        self._lit: dict[Led, bool] = {}
        self._changed = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="leds", daemon=True)
        self._thread.start()

    def show(self, led: Led, pattern: Pattern) -> None:
        with self._changed:
            self._patterns[led] = (pattern, self.clock())
            self._changed.notify()

    def _step(self) -> float | None:
        """Set every LED for now; the seconds until the next edge (None: none due)."""
        now = self.clock()
        wait: float | None = None
        for led, (pattern, since) in self._patterns.items():
            ms = (now - since) * 1000.0
            lit = lit_at(pattern, ms)
            if self._lit.get(led) != lit:
                self.lines.set(led, lit)
                self._lit[led] = lit
            edge = next_change_ms(pattern, ms)
            if edge is not None:
                left = (edge - ms) / 1000.0
                wait = left if wait is None else min(wait, left)
        return wait

    def _run(self) -> None:
        with self._changed:
            while not self._closed:
                self._changed.wait(self._step())

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify()
        self._thread.join(timeout=2)
        for led in list(self._patterns):
            self.lines.set(led, False)
        self.lines.close()
