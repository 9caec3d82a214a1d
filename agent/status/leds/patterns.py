"""What each LED shows for each state, and when a blinking LED is lit (pure).

Two LEDs, one per subsystem, read by a driver without a manual:

- solid: good;
- solid with a short dark blink every 2 s: good, catching up (the backlog drains);
- slow even blink (1 Hz): working on it (searching the sky, waiting for the network);
- fast blink (5 Hz): call someone (no receiver, the server refuses the unit, bad config);
- off: the agent is not running.

Every pattern is a single steady period, never a group of flashes: the Pi's own
boot error codes (on its ACT LED) are counted groups of long and short flashes,
and nothing here can be mistaken for one. docs/bus-unit.md has the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agent.status.snapshot import Gps, StatusSnapshot, Uplink

Led = Literal["gps", "link"]
LEDS: tuple[Led, ...] = ("gps", "link")


@dataclass(frozen=True, slots=True)
class Pattern:
    """``on_ms`` lit, then ``off_ms`` dark, repeated. (1, 0) is solid, (0, 1) is off."""

    name: str
    on_ms: int
    off_ms: int

    @property
    def blinks(self) -> bool:
        return self.on_ms > 0 and self.off_ms > 0


OFF = Pattern("off", 0, 1)
SOLID = Pattern("solid", 1, 0)
CATCHING_UP = Pattern("solid, short dark blink", 1800, 200)
SLOW = Pattern("slow blink", 500, 500)
FAST = Pattern("fast blink", 100, 100)

GPS_PATTERNS: dict[Gps, Pattern] = {"fix": SOLID, "searching": SLOW, "no_device": FAST}
LINK_PATTERNS: dict[Uplink, Pattern] = {
    "ok": SOLID,
    "backlog": CATCHING_UP,
    "connecting": SLOW,
    "offline": SLOW,
    "auth_error": FAST,
    "config_error": FAST,
}


def patterns(snapshot: StatusSnapshot) -> dict[Led, Pattern]:
    """Both LEDs for one snapshot; dark once the agent stops."""
    if snapshot.stopping:
        return {"gps": OFF, "link": OFF}
    return {"gps": GPS_PATTERNS[snapshot.gps], "link": LINK_PATTERNS[snapshot.uplink]}


def lit_at(pattern: Pattern, ms: float) -> bool:
    """Whether the LED is lit ``ms`` after the pattern started (software blinking)."""
    if not pattern.blinks:
        return pattern.on_ms > 0
    return ms % (pattern.on_ms + pattern.off_ms) < pattern.on_ms


def next_change_ms(pattern: Pattern, ms: float) -> float | None:
    """When, after ``ms``, the LED next turns on or off; None for a steady pattern."""
    if not pattern.blinks:
        return None
    period = pattern.on_ms + pattern.off_ms
    start = ms - ms % period
    edge = start + pattern.on_ms
    return edge if ms < edge else start + period
