"""The one fix type every GPS source produces and every later stage consumes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Fix:
    """One GPS epoch.

    ``t`` is the fix time from the GPS itself, timezone-aware UTC: a Pi has no
    RTC, so the system clock is never a source of fix times.
    """

    t: datetime
    lat: float
    lon: float
    alt: float | None = None  # metres above mean sea level
    speed: float | None = None  # m/s over ground
    heading: float | None = None  # degrees true, 0..360
    hdop: float | None = None
    sats: int | None = None
    mode: int | None = None  # gpsd convention: 2 = 2D, 3 = 3D
