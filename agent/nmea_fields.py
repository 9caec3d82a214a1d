"""What one NMEA sentence says about its epoch: fields in, a :class:`Reading` out.

Pure: no I/O, no clock, no state. :mod:`agent.nmea` merges the readings of one
epoch into a fix.

Validity follows gpsd (see docs/decisions.md, "NMEA validity follows gpsd"):

- RMC: status ``A`` (or ``D``) and, when present, a measured FAA mode. The
  NMEA 4.10+ navigational status (the last field) is ignored: u-blox M8/M9/F9,
  Quectel L76K and others send ``V`` there as a fixed "not provided".
- GGA: quality 1-5, and a GP/GN GGA must use at least 3 satellites (cold
  starts print positions with quality 1 and 0 satellites). Other talkers
  (SiRFstarV's GLGGA) count their own constellation only, so the rule would
  reject good fixes there.
- GNS: the mode is one character per constellation (GPS, GLONASS, Galileo,
  BeiDou, QZSS, NavIC); the epoch is valid when any of them is a measured
  mode. Its navigational status is ignored like RMC's.
- GLL: status ``A`` and, when present, a measured FAA mode.
- GSA: fix type 1 is no fix, 2/3 the dimension (it carries no time; the
  assembler decides which epoch it belongs to, and takes the best fix type
  of an epoch's per-constellation GSAs).
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import reduce

import pynmea2

KNOT_MS = 1852.0 / 3600.0

# FAA mode indicators (NMEA 2.3+) that mean a measured position. 'E' (dead
# reckoning) is the receiver extrapolating from the last heading and speed
# after losing the sky: under a bridge or in a tunnel it keeps "driving" a bus
# that may have stopped or turned, and those points would then be stored as
# if measured. pynmea2's is_valid accepts E, M (manual) and S (simulator); we
# don't. Position is still emitted, with mode=1, so "GPS talking, no fix" shows.
MEASURED_MODES = frozenset("ADFPR")
# GGA quality: 1 GPS, 2 DGPS, 3 PPS, 4 RTK fixed, 5 RTK float. 6 is dead
# reckoning (same reasoning as FAA 'E'), 7 manual, 8 simulator, 0 invalid.
_VALID_GGA_QUALITY = frozenset({1, 2, 3, 4, 5})
# Talkers whose GGA satellite count is the whole solution's.
_ALL_SYSTEMS_TALKERS = frozenset({"GP", "GN"})
_MIN_GGA_SATS = 3
# A GSA with fewer fields is malformed (the i.Trek M3 sends "$GPGSA,A,1,,,,"
# while it has fix): gpsd ignores it, and so do we.
_GSA_FIELDS = 17
_DM = re.compile(r"^(?P<degrees>\d*?)(?P<minutes>\d{1,2}(?:\.\d*)?)$")


def checksum(body: str) -> str:
    """The two hex digits of an NMEA checksum for ``body`` (between ``$`` and ``*``)."""
    return f"{reduce(operator.xor, map(ord, body), 0):02X}"


def sentence(body: str) -> str:
    """``body`` framed as a sentence: ``$body*hh`` (no line ending)."""
    return f"${body}*{checksum(body)}"


@dataclass(slots=True)
class Reading:
    """What one RMC, GGA, GNS or GLL sentence says; ``None`` where it says nothing."""

    tod: time | None
    valid: bool
    lat: float | None = None
    lon: float | None = None
    date: date | None = None
    speed: float | None = None
    heading: float | None = None
    alt: float | None = None
    hdop: float | None = None
    sats: int | None = None
    all_sats: bool = True  # False: ``sats`` counts one constellation only


@dataclass(frozen=True, slots=True)
class GsaReading:
    """A GSA's fix type (1 none, 2 = 2D, 3 = 3D; None if unusable) and hdop."""

    mode: int | None
    hdop: float | None


def read_rmc(msg: pynmea2.NMEASentence) -> Reading:
    mode = raw(msg, "mode_indicator")
    day = raw(msg, "datestamp")
    knots = to_float(raw(msg, "spd_over_grnd"))
    return Reading(
        tod=to_tod(raw(msg, "timestamp")),
        valid=raw(msg, "status") in ("A", "D") and (not mode or mode in MEASURED_MODES),
        lat=to_coord(raw(msg, "lat"), raw(msg, "lat_dir"), "NS", 90.0),
        lon=to_coord(raw(msg, "lon"), raw(msg, "lon_dir"), "EW", 180.0),
        date=datetime.strptime(day, "%d%m%y").date() if day else None,
        speed=knots * KNOT_MS if knots is not None else None,
        heading=to_float(raw(msg, "true_course")),
    )


def read_gga(msg: pynmea2.NMEASentence) -> Reading:
    sats = to_int(raw(msg, "num_sats"))
    valid = to_int(raw(msg, "gps_qual")) in _VALID_GGA_QUALITY
    all_sats = msg.talker in _ALL_SYSTEMS_TALKERS
    # An empty count says nothing either way; only a reported count below 3
    # overrides the quality flag.
    if all_sats and sats is not None and sats < _MIN_GGA_SATS:
        valid = False
    return Reading(
        tod=to_tod(raw(msg, "timestamp")),
        valid=valid,
        lat=to_coord(raw(msg, "lat"), raw(msg, "lat_dir"), "NS", 90.0),
        lon=to_coord(raw(msg, "lon"), raw(msg, "lon_dir"), "EW", 180.0),
        alt=to_float(raw(msg, "altitude")),
        hdop=to_float(raw(msg, "horizontal_dil")),
        sats=sats,
        all_sats=all_sats,
    )


def read_gns(msg: pynmea2.NMEASentence) -> Reading:
    modes = raw(msg, "mode_indicator")
    return Reading(
        tod=to_tod(raw(msg, "timestamp")),
        valid=any(m in MEASURED_MODES for m in modes),
        lat=to_coord(raw(msg, "lat"), raw(msg, "lat_dir"), "NS", 90.0),
        lon=to_coord(raw(msg, "lon"), raw(msg, "lon_dir"), "EW", 180.0),
        alt=to_float(raw(msg, "altitude")),
        hdop=to_float(raw(msg, "hdop")),
        sats=to_int(raw(msg, "num_sats")),
    )


def read_gll(msg: pynmea2.NMEASentence) -> Reading:
    mode = raw(msg, "faa_mode")
    return Reading(
        tod=to_tod(raw(msg, "timestamp")),
        valid=raw(msg, "status") == "A" and (not mode or mode in MEASURED_MODES),
        lat=to_coord(raw(msg, "lat"), raw(msg, "lat_dir"), "NS", 90.0),
        lon=to_coord(raw(msg, "lon"), raw(msg, "lon_dir"), "EW", 180.0),
    )


def read_gsa(msg: pynmea2.NMEASentence) -> GsaReading:
    if len(msg.data) < _GSA_FIELDS:
        return GsaReading(None, None)
    fix_type = to_int(raw(msg, "mode_fix_type"))
    return GsaReading(fix_type if fix_type in (1, 2, 3) else None, to_float(raw(msg, "hdop")))


READERS = {"RMC": read_rmc, "GGA": read_gga, "GNS": read_gns, "GLL": read_gll}


# -- field helpers (pynmea2 returns the raw string when a typed field is bad) --


def raw(msg: pynmea2.NMEASentence, name: str) -> str:
    index: int = type(msg).name_to_idx[name]
    data: list[str] = msg.data
    return data[index].strip() if index < len(data) else ""


def to_float(text: str) -> float | None:
    if not text:
        return None
    value = float(text)
    return value if value == value and abs(value) != float("inf") else None


def to_int(text: str) -> int | None:
    return int(text) if text else None


def to_tod(text: str) -> time | None:
    if len(text) < 6 or not text[:6].isdigit():
        return None
    micro = round(float(text[6:]) * 1_000_000) if len(text) > 6 else 0
    return time(int(text[0:2]), int(text[2:4]), int(text[4:6]), min(micro, 999_999))


def to_coord(text: str, hemi: str, signs: str, limit: float) -> float | None:
    """``(d)ddmm.mmmm`` plus hemisphere to signed degrees; None if empty or absurd."""
    match = _DM.match(text)
    if match is None or hemi not in signs:
        return None
    minutes = float(match["minutes"])
    value = float(match["degrees"] or 0) + minutes / 60.0
    if minutes >= 60.0 or value > limit:
        return None
    return -value if hemi == signs[1] else value
