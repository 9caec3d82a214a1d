"""LEDs under /sys/class/leds, blinking in the kernel.

A blink is the kernel's ``timer`` trigger with ``delay_on``/``delay_off``, so it
goes on when the agent hangs (and the watchdog restarts it) and costs the agent
no wake-ups. Solid and off are trigger ``none`` plus ``brightness``. Files are
written only when a pattern changes: re-writing ``timer`` restarts the blink.

On a Pi the LEDs come from the ``gpio-led`` overlay (firmware-config/config.txt.append);
writing ``timer`` to ``trigger`` is what makes the kernel create ``delay_on`` and
``delay_off``.
"""

from __future__ import annotations

from pathlib import Path

from agent.status.leds.backend import LedError
from agent.status.leds.patterns import Led, Pattern


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value + "\n", encoding="ascii")
    except OSError as exc:
        raise LedError(f"can't write {value!r} to {path}: {exc.strerror}") from None


class SysfsLed:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        trigger = directory / "trigger"
        try:
            available = trigger.read_text(encoding="ascii")
        except OSError as exc:
            raise LedError(
                f"no LED {directory.name!r} in {directory.parent} ({exc.strerror}): "
                "is the gpio-led overlay in config.txt, and leds.gps/leds.link its label?"
            ) from None
        if "timer" not in available.replace("[", " ").replace("]", " ").split():
            raise LedError(f"{trigger}: the kernel has no 'timer' trigger (ledtrig-timer)")
        try:
            self.max = (directory / "max_brightness").read_text(encoding="ascii").strip()
        except OSError:
            self.max = "1"

    def show(self, pattern: Pattern) -> None:
        if pattern.blinks:
            _write(self.dir / "trigger", "timer")
            _write(self.dir / "delay_on", str(pattern.on_ms))
            _write(self.dir / "delay_off", str(pattern.off_ms))
        else:
            _write(self.dir / "trigger", "none")
            _write(self.dir / "brightness", self.max if pattern.on_ms else "0")


class SysfsLeds:
    def __init__(self, root: Path, names: dict[Led, str]) -> None:
        self.leds = {led: SysfsLed(root / name) for led, name in names.items()}

    def show(self, led: Led, pattern: Pattern) -> None:
        self.leds[led].show(pattern)

    def close(self) -> None:
        pass  # the kernel keeps the last pattern; the runner showed "off" before closing
