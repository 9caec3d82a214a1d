"""Where fixes come from: gpsd, an NMEA serial port, or a recorded NMEA file.

Construction is the caller's business (settings decide which one); every
source then offers the same loop, so the rest of the agent never knows which
one it reads.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Protocol

from agent.fix import Fix
from agent.sources.gpsd import GpsdSource
from agent.sources.replay import ReplaySource
from agent.sources.serial import SerialSource

__all__ = ["GpsSource", "GpsdSource", "ReplaySource", "SerialSource"]


class GpsSource(Protocol):
    # Whether the source reaches the receiver now (gpsd has one open, NMEA comes on
    # the port, the file is being read; D82), and why it last could not: `doctor`
    # names that cause.
    connected: bool
    last_error: str | None

    def fixes(self, stop: threading.Event) -> Iterator[Fix | None]:
        """Yield each new fix as it arrives; yield None at least every `idle_s` seconds
        (default 1.0) while nothing arrives (so the caller can update its state and
        feed the watchdog); return when `stop` is set, or (replay only) when the
        input ends."""
        ...
