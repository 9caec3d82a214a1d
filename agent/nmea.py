"""NMEA 0183 lines in, one :class:`~agent.fix.Fix` per GPS epoch out.

Pure: no I/O and no clock. The serial and replay sources feed lines here;
:mod:`agent.nmea_fields` reads each sentence, this module merges them.

A receiver reports one epoch (one instant) in several sentences: RMC (date,
time, validity, speed, course), GGA (time, quality, sats, hdop, altitude), GNS
(GGA's multi-constellation twin, sent instead of it by some receivers), GLL
(time, position, validity) and GSA (2D/3D, DOPs). :class:`EpochAssembler`
merges the sentences that carry the same time into one fix.

When is an epoch complete?  A receiver gives no end-of-epoch marker, so waiting
for the next epoch's first sentence would hold every live fix back by one
second. Instead the assembler learns which of RMC/GGA/GNS/GLL this receiver
sends (the union over the last few epochs; RMC and GGA until it has seen any)
and emits as soon as all of them have arrived for the current time. A sentence
with a new time still closes an incomplete epoch (a sentence lost to noise),
and :meth:`flush` closes it when the input goes quiet or ends. A sentence
arriving for an epoch already emitted adds nothing: the fix has left, and one
fix per epoch is the contract.

GSA carries no time. A GSA that arrives while an epoch is still open belongs to
it: fix type 1 makes it a no-fix epoch, 2/3 give its mode (the best of them when
a multi-GNSS receiver sends one per constellation). A GSA arriving after
the epoch has left (u-blox sends it after RMC and GGA) can no longer change
that fix; its 2D/3D still serves the next epochs that get no GSA of their own
in time (a one-epoch lag on a mode change), but its "no fix" does not veto
them: their own RMC/GGA say whether they are fixes.

Dates: only RMC (and ZDA) carry one. A GGA-, GNS- or GLL-only epoch takes the
day that puts its time nearest the last known date and time, so 23:59:59
followed by 00:00:00 rolls over to the next day. Until some RMC or ZDA has
given a date, such epochs produce no fix: the system clock is never a fallback.

Invalid epochs (see :mod:`agent.nmea_fields` for what each sentence counts as
invalid; any invalid sentence makes the epoch invalid) that still carry a
position come out with ``mode=1``: the pipeline drops them, the status screen
shows "GPS talking, no fix".
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import pynmea2

from agent.fix import Fix
from agent.nmea_fields import (
    KNOT_MS,
    READERS,
    Reading,
    checksum,
    raw,
    read_gsa,
    sentence,
    to_int,
    to_tod,
)

__all__ = ["KNOT_MS", "EpochAssembler", "checksum", "sentence"]

log = logging.getLogger(__name__)

_DEFAULT_TYPES = frozenset({"RMC", "GGA"})
_HISTORY_EPOCHS = 3
_HALF_DAY = timedelta(hours=12)


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
    gsa_mode: int | None = None  # from a GSA that arrived while the epoch was open
    emitted: bool = False

    def merge(self, reading: Reading) -> None:
        self.valid = self.valid and reading.valid
        if reading.lat is not None and reading.lon is not None:
            self.lat, self.lon = reading.lat, reading.lon
        for name in ("date", "speed", "heading", "alt", "hdop"):
            value = getattr(reading, name)
            if value is not None:
                setattr(self, name, value)
        # SiRFstarV follows GPGGA (8 satellites) with GLGGA (GLONASS's 2):
        # a per-constellation count never replaces the whole solution's.
        if reading.sats is not None and (reading.all_sats or self.sats is None):
            self.sats = reading.sats


class EpochAssembler:
    """Turns a stream of NMEA lines into fixes, one per epoch.

    ``feed`` never raises on bad input: lines with a wrong or missing checksum,
    unknown sentences and garbage are counted in ``rejected`` and skipped;
    ``parsed`` counts the lines that were NMEA.
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
        self.parsed = 0

    def feed(self, line: str) -> list[Fix]:
        """Process one line; return the fixes it completed (usually zero or one)."""
        msg = self._parse(line)
        if msg is None:
            return []
        kind = getattr(msg, "sentence_type", None)
        try:
            if kind in READERS:
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
            msg = pynmea2.parse(line, check=True)
        except Exception as exc:  # pynmea2 raises more than ParseError on junk
            self.rejected += 1
            log.debug("rejected NMEA line %r: %s", line, exc)
            return None
        self.parsed += 1
        return msg

    # -- sentence handlers --------------------------------------------------

    def _position(self, msg: pynmea2.NMEASentence, kind: str) -> list[Fix]:
        # Read every field before touching state, so a malformed field can't
        # lose the previous epoch's fix half-way through.
        reading = READERS[kind](msg)
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
        epoch.merge(reading)
        expected = frozenset().union(*self._history) if self._history else _DEFAULT_TYPES
        if expected <= epoch.types:
            fix = self._finish(epoch)
            if fix is not None:
                out.append(fix)
        return out

    def _gsa(self, msg: pynmea2.NMEASentence) -> None:
        gsa = read_gsa(msg)
        if gsa.mode is None:
            return
        epoch = self._epoch
        if epoch is not None and not epoch.emitted:
            # Multi-GNSS receivers send one GSA per constellation. The best
            # fix type among them is the receiver's: a constellation it does
            # not use must not veto the others.
            epoch.gsa_mode = max(epoch.gsa_mode or 0, gsa.mode)
        self._gsa_mode, self._gsa_hdop = gsa.mode, gsa.hdop

    def _zda(self, msg: pynmea2.NMEASentence) -> list[Fix]:
        tod = to_tod(raw(msg, "timestamp"))
        day, month, year = (to_int(raw(msg, n)) for n in ("day", "month", "year"))
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
        if not epoch.valid or epoch.gsa_mode == 1:
            mode = 1
        elif epoch.gsa_mode in (2, 3):
            mode = epoch.gsa_mode
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
