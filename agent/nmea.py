"""NMEA 0183 lines in, one :class:`~agent.fix.Fix` per GPS epoch out.

Pure: no I/O and no clock. The serial and replay sources feed lines here.

A receiver reports one epoch (one instant) in several sentences: RMC (date,
time, validity, speed, course), GGA (time, quality, sats, hdop, altitude) and
GSA (2D/3D, DOPs). :class:`EpochAssembler` merges the sentences that carry the
same time into one fix.

When is an epoch complete?  A receiver gives no end-of-epoch marker, so waiting
for the next epoch's first sentence would hold every live fix back by one
second. Instead the assembler learns which of RMC/GGA this receiver sends (the
union over the last few epochs; both until it has seen any) and emits as soon as
all of them have arrived for the current time. A sentence with a new time still
closes an incomplete epoch (a sentence lost to noise), and :meth:`flush` closes
it when the input goes quiet or ends. A sentence arriving for an epoch already
emitted adds nothing: the fix has left, and one fix per epoch is the contract.
GSA carries no time, so it cannot be matched to an epoch; the latest GSA is used
for the 2D/3D mode of the next fixes (a one-second lag on a mode change).

Dates: only RMC (and ZDA) carry one. A GGA-only epoch takes the day that puts
its time nearest the last known date and time, so 23:59:59 followed by
00:00:00 rolls over to the next day. Until some RMC or ZDA has given a date,
GGA-only epochs produce no fix: the system clock is never a fallback.

Invalid epochs (RMC status V or mode E/N/M/S, GGA quality 0 or 6-8) that still
carry a position come out with ``mode=1``: the pipeline drops them, the status
screen shows "GPS talking, no fix".
"""

from __future__ import annotations

import logging
import operator
import re
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import reduce

import pynmea2

from agent.fix import Fix

log = logging.getLogger(__name__)

KNOT_MS = 1852.0 / 3600.0

# RMC mode indicators (NMEA 2.3+) that mean a measured position. 'E' (dead
# reckoning) is the receiver extrapolating from the last heading and speed
# after losing the sky: under a bridge or in a tunnel it keeps "driving" a bus
# that may have stopped or turned, and those points would then be stored as
# if measured. pynmea2's is_valid accepts E, M (manual) and S (simulator); we
# don't. Position is still emitted, with mode=1, so "GPS talking, no fix" shows.
_VALID_RMC_MODES = frozenset("ADFPR")
# GGA quality: 1 GPS, 2 DGPS, 3 PPS, 4 RTK fixed, 5 RTK float. 6 is dead
# reckoning (same reasoning as RMC 'E'), 7 manual, 8 simulator, 0 invalid.
_VALID_GGA_QUALITY = frozenset({1, 2, 3, 4, 5})
_POSITION_TYPES = frozenset({"RMC", "GGA"})
_HISTORY_EPOCHS = 3
_HALF_DAY = timedelta(hours=12)
_DM = re.compile(r"^(?P<degrees>\d*?)(?P<minutes>\d{1,2}(?:\.\d*)?)$")


def checksum(body: str) -> str:
    """The two hex digits of an NMEA checksum for ``body`` (between ``$`` and ``*``)."""
    return f"{reduce(operator.xor, map(ord, body), 0):02X}"


def sentence(body: str) -> str:
    """``body`` framed as a sentence: ``$body*hh`` (no line ending)."""
    return f"${body}*{checksum(body)}"


@dataclass(slots=True)
class _Epoch:
    tod: time  # time of day, UTC, as sent by the receiver
    types: set[str] = field(default_factory=set)
    date: date | None = None  # from RMC
    lat: float | None = None
    lon: float | None = None
    speed: float | None = None
    heading: float | None = None
    alt: float | None = None
    hdop: float | None = None
    sats: int | None = None
    valid: bool = True
    emitted: bool = False


@dataclass(slots=True)
class _Reading:
    """What one RMC or GGA sentence says; ``None`` where it says nothing."""

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

    def merge_into(self, epoch: _Epoch) -> None:
        epoch.valid = epoch.valid and self.valid
        if self.lat is not None and self.lon is not None:
            epoch.lat, epoch.lon = self.lat, self.lon
        for name in ("date", "speed", "heading", "alt", "hdop", "sats"):
            value = getattr(self, name)
            if value is not None:
                setattr(epoch, name, value)


def _read_rmc(msg: pynmea2.NMEASentence) -> _Reading:
    mode = _raw(msg, "mode_indicator")
    day = _raw(msg, "datestamp")
    knots = _float(_raw(msg, "spd_over_grnd"))
    valid = _raw(msg, "status") == "A" and (not mode or mode in _VALID_RMC_MODES)
    # NMEA 4.1 adds a navigational status; V there means "not valid" too.
    valid = valid and _raw(msg, "nav_status") != "V"
    return _Reading(
        tod=_tod(_raw(msg, "timestamp")),
        valid=valid,
        lat=_coord(_raw(msg, "lat"), _raw(msg, "lat_dir"), "NS", 90.0),
        lon=_coord(_raw(msg, "lon"), _raw(msg, "lon_dir"), "EW", 180.0),
        date=datetime.strptime(day, "%d%m%y").date() if day else None,
        speed=knots * KNOT_MS if knots is not None else None,
        heading=_float(_raw(msg, "true_course")),
    )


def _read_gga(msg: pynmea2.NMEASentence) -> _Reading:
    return _Reading(
        tod=_tod(_raw(msg, "timestamp")),
        valid=_int(_raw(msg, "gps_qual")) in _VALID_GGA_QUALITY,
        lat=_coord(_raw(msg, "lat"), _raw(msg, "lat_dir"), "NS", 90.0),
        lon=_coord(_raw(msg, "lon"), _raw(msg, "lon_dir"), "EW", 180.0),
        alt=_float(_raw(msg, "altitude")),
        hdop=_float(_raw(msg, "horizontal_dil")),
        sats=_int(_raw(msg, "num_sats")),
    )


class EpochAssembler:
    """Turns a stream of NMEA lines into fixes, one per epoch.

    ``feed`` never raises on bad input: lines with a wrong or missing checksum,
    unknown sentences and garbage are counted in ``rejected`` and skipped.
    """

    def __init__(self) -> None:
        self._epoch: _Epoch | None = None
        # Time of the last closed epoch: a straggler for it (after a flush on
        # silence) must not open a second epoch for the same instant.
        self._closed_tod: time | None = None
        self._history: deque[frozenset[str]] = deque(maxlen=_HISTORY_EPOCHS)
        # Last instant whose full date we know; GGA-only epochs take their
        # date from it (GGA has none).
        self._ref: datetime | None = None
        self._gsa_mode: int | None = None
        self._gsa_hdop: float | None = None
        self.rejected = 0

    def feed(self, line: str) -> list[Fix]:
        """Process one line; return the fixes it completed (usually zero or one)."""
        msg = self._parse(line)
        if msg is None:
            return []
        kind = getattr(msg, "sentence_type", None)
        try:
            if kind in _POSITION_TYPES:
                return self._position(msg, kind)
            if kind == "GSA":
                self._gsa(msg)
            elif kind == "ZDA":
                return self._zda(msg)
        except (ValueError, IndexError, TypeError) as exc:
            # A sentence with a valid checksum but a malformed field (some
            # receivers emit odd values at cold start): skip the sentence.
            self.rejected += 1
            log.debug("malformed %s sentence %r: %s", kind, line, exc)
        return []

    def flush(self) -> list[Fix]:
        """Close the current epoch (input ended or went quiet) and return its fix."""
        return self._close()

    # -- parsing -------------------------------------------------------------

    def _parse(self, line: str) -> pynmea2.NMEASentence | None:
        line = line.strip()
        # The first line read after opening a port is usually the tail of a
        # sentence; a '$' inside it starts a fresh one. The checksum still
        # guards against stitching.
        start = line.rfind("$")
        if start > 0:
            line = line[start:]
        if not line:
            return None
        try:
            return pynmea2.parse(line, check=True)
        except Exception as exc:  # pynmea2 raises more than ParseError on junk
            self.rejected += 1
            log.debug("rejected NMEA line %r: %s", line, exc)
            return None

    # -- sentence handlers --------------------------------------------------

    def _position(self, msg: pynmea2.NMEASentence, kind: str) -> list[Fix]:
        # Read every field before touching state, so a malformed field can't
        # lose the previous epoch's fix half-way through.
        reading = _read_rmc(msg) if kind == "RMC" else _read_gga(msg)
        if reading.tod is None or reading.tod == self._closed_tod:
            return []
        out: list[Fix] = []
        epoch = self._epoch
        if epoch is None or epoch.tod != reading.tod:
            out.extend(self._close())
            epoch = self._epoch = _Epoch(tod=reading.tod)
        epoch.types.add(kind)
        if epoch.emitted:
            return out
        reading.merge_into(epoch)
        expected = frozenset().union(*self._history) if self._history else _POSITION_TYPES
        if expected <= epoch.types:
            fix = self._finish(epoch)
            if fix is not None:
                out.append(fix)
        return out

    def _gsa(self, msg: pynmea2.NMEASentence) -> None:
        self._gsa_mode = _int(_raw(msg, "mode_fix_type"))
        self._gsa_hdop = _float(_raw(msg, "hdop"))

    def _zda(self, msg: pynmea2.NMEASentence) -> list[Fix]:
        tod = _tod(_raw(msg, "timestamp"))
        day, month, year = (_int(_raw(msg, n)) for n in ("day", "month", "year"))
        if tod is None or day is None or month is None or year is None:
            return []
        self._ref = datetime.combine(date(year, month, day), tod)
        # ZDA is a date source only. It never closes an epoch: some receivers
        # send it at the top of the second before the epoch's position
        # sentences, others after them.
        return []

    # -- epoch completion ----------------------------------------------------

    def _close(self) -> list[Fix]:
        epoch, self._epoch = self._epoch, None
        if epoch is None:
            return []
        self._closed_tod = epoch.tod
        self._history.append(frozenset(epoch.types))
        if epoch.emitted:
            return []
        fix = self._finish(epoch)
        return [fix] if fix is not None else []

    def _finish(self, epoch: _Epoch) -> Fix | None:
        epoch.emitted = True
        when = self._resolve_date(epoch)
        if when is None or epoch.lat is None or epoch.lon is None:
            return None
        if not epoch.valid:
            mode = 1
        elif self._gsa_mode in (2, 3):
            mode = self._gsa_mode
        else:
            mode = 3 if epoch.alt is not None else 2
        return Fix(
            t=when.replace(tzinfo=UTC),
            lat=epoch.lat,
            lon=epoch.lon,
            alt=epoch.alt if mode == 3 else None,
            speed=epoch.speed,
            heading=epoch.heading,
            hdop=epoch.hdop if epoch.hdop is not None else self._gsa_hdop,
            sats=epoch.sats,
            mode=mode,
        )

    def _resolve_date(self, epoch: _Epoch) -> datetime | None:
        if epoch.date is not None:
            when = datetime.combine(epoch.date, epoch.tod)
        elif self._ref is None:
            return None  # GGA carries no date: without an RMC/ZDA yet, no fix
        else:
            # Pick the day that puts this time nearest the last known instant:
            # 23:59:59 then 00:00:00 rolls forward over midnight, while a small
            # step back (a receiver glitch) does not jump a day ahead.
            when = datetime.combine(self._ref.date(), epoch.tod)
            if when < self._ref - _HALF_DAY:
                when += timedelta(days=1)
            elif when > self._ref + _HALF_DAY:
                when -= timedelta(days=1)
        self._ref = when
        return when


# -- field helpers (pynmea2 returns the raw string when a typed field is bad) --


def _raw(msg: pynmea2.NMEASentence, name: str) -> str:
    index: int = type(msg).name_to_idx[name]
    data: list[str] = msg.data
    return data[index].strip() if index < len(data) else ""


def _float(text: str) -> float | None:
    if not text:
        return None
    value = float(text)
    return value if value == value and abs(value) != float("inf") else None


def _int(text: str) -> int | None:
    return int(text) if text else None


def _tod(text: str) -> time | None:
    if len(text) < 6 or not text[:6].isdigit():
        return None
    micro = round(float(text[6:]) * 1_000_000) if len(text) > 6 else 0
    return time(int(text[0:2]), int(text[2:4]), int(text[4:6]), min(micro, 999_999))


def _coord(text: str, hemi: str, signs: str, limit: float) -> float | None:
    """``(d)ddmm.mmmm`` plus hemisphere to signed degrees; None if empty or absurd."""
    match = _DM.match(text)
    if match is None or hemi not in signs:
        return None
    minutes = float(match["minutes"])
    value = float(match["degrees"] or 0) + minutes / 60.0
    if minutes >= 60.0 or value > limit:
        return None
    return -value if hemi == signs[1] else value
