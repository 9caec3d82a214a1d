"""A StatusSink that shows each snapshot on the two LEDs."""

from __future__ import annotations

from agent.settings import LedSettings
from agent.status.leds.backend import LedBackend, LedError
from agent.status.leds.patterns import Led, Pattern, patterns
from agent.status.snapshot import StatusSnapshot


def open_leds(settings: LedSettings) -> LedBackend | None:
    """The configured backend, or None for ``leds.backend = "none"``; LedError if it
    can't be driven (the message names the LED or chip)."""
    names: dict[Led, str] = {"gps": settings.gps, "link": settings.link}
    if settings.backend == "sysfs":
        from agent.status.leds.sysfs import SysfsLeds

        return SysfsLeds(settings.sysfs_root, names)
    if settings.backend == "gpiod":
        from agent.status.leds.gpio import BlinkingLeds, GpiodLines

        return BlinkingLeds(GpiodLines(settings.chip, names, settings.active_low))
    if settings.backend == "none":
        return None
    raise LedError(f"leds.backend: unknown backend {settings.backend!r}")


class LedSink:
    def __init__(self, backend: LedBackend) -> None:
        self.backend = backend
        self._shown: dict[Led, Pattern] = {}

    def publish(self, snapshot: StatusSnapshot) -> None:
        for led, pattern in patterns(snapshot).items():
            if self._shown.get(led) != pattern:
                self.backend.show(led, pattern)
                self._shown[led] = pattern  # only once shown: a failed write is retried

    def close(self) -> None:
        self.backend.close()
