"""The two status LEDs (GPS, link): patterns, backends, and the sink that drives them.

patterns.py  which pattern for which state, and when a blinking LED is lit (pure)
backend.py   the LedBackend protocol and LedError
sysfs.py     /sys/class/leds with the kernel's timer trigger (preferred)
gpio.py      GPIO lines through libgpiod v2, blinked by a thread
sink.py      LedSink: a StatusSink that shows each snapshot on the LEDs
"""

from __future__ import annotations

from agent.status.leds.backend import LedBackend, LedError
from agent.status.leds.patterns import LEDS, Led, Pattern, patterns
from agent.status.leds.sink import LedSink, open_leds

__all__ = ["LEDS", "Led", "LedBackend", "LedError", "LedSink", "Pattern", "open_leds", "patterns"]
