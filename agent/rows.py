"""The buffer file's format: its tables, their version, and a fix as one row of integers.

The primary key is the fix time in integer epoch milliseconds (WITHOUT ROWID,
so the key *is* the row), lat/lon are integers of 1e-7 degree, alt/heading/hdop
tenths and speed hundredths: about 40 bytes on disk per fix. Two fixes with the
same millisecond are the same fix, as they are for the server.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.fix import Fix

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
COLUMNS = "t, lat, lon, alt, speed, heading, hdop, sats, mode"

SCHEMA_VERSION = 1  # in PRAGMA user_version
SCHEMA = """
CREATE TABLE IF NOT EXISTS fixes (
    t INTEGER PRIMARY KEY,  -- GPS fix time, epoch ms UTC
    lat INTEGER NOT NULL,   -- 1e-7 degree
    lon INTEGER NOT NULL,   -- 1e-7 degree
    alt INTEGER,            -- decimetres
    speed INTEGER,          -- cm/s
    heading INTEGER,        -- 0.1 degree
    hdop INTEGER,           -- 0.1
    sats INTEGER,
    mode INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS quarantine (
    t INTEGER PRIMARY KEY, lat INTEGER NOT NULL, lon INTEGER NOT NULL, alt INTEGER,
    speed INTEGER, heading INTEGER, hdop INTEGER, sats INTEGER, mode INTEGER,
    reason TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID;
"""


def t_ms(t: datetime) -> int:
    """Epoch milliseconds, exact integer arithmetic (floats lose microseconds)."""
    return (t - EPOCH) // _MS


def _scaled(v: float | None, scale: float) -> int | None:
    return None if v is None else round(v * scale)


def _unscaled(v: int | None, scale: float) -> float | None:
    return None if v is None else v / scale


def to_row(fix: Fix) -> tuple[Any, ...]:
    return (
        t_ms(fix.t),
        round(fix.lat * 1e7),
        round(fix.lon * 1e7),
        _scaled(fix.alt, 10),
        _scaled(fix.speed, 100),
        _scaled(fix.heading, 10),
        _scaled(fix.hdop, 10),
        fix.sats,
        fix.mode,
    )


def from_row(row: Sequence[Any]) -> Fix:
    return Fix(
        t=EPOCH + timedelta(milliseconds=row[0]),
        lat=row[1] / 1e7,
        lon=row[2] / 1e7,
        alt=_unscaled(row[3], 10),
        speed=_unscaled(row[4], 100),
        heading=_unscaled(row[5], 10),
        hdop=_unscaled(row[6], 10),
        sats=row[7],
        mode=row[8],
    )
