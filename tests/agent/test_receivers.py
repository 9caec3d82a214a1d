"""Every fix a real receiver reports: gpsd's regression logs, held to gpsd's own decoding.

``../shared/receivers/`` (next to the checkout, not in it: see its README for
where each log comes from and its licence) holds NMEA logs recorded from 20 real
receivers, each with ``NAME.log.chk``: the log's lines as gpsd echoed them,
each followed by the TPV reports gpsd made after it. For every log the agent
must deliver exactly gpsd's 2D/3D epochs, with gpsd's time and position, and
nothing for the epochs gpsd reported as no fix.

Reading gpsd's reports takes care of its habits:

- it reports an epoch several times as the sentences arrive; the last report
  with a fix is the most complete one;
- a "no fix" report triggered by the *next* epoch's first sentence can carry
  the previous epoch's time; it does not undo that epoch's fix (checked: a
  "no fix" triggered by a sentence of the same epoch would stop the test);
- reports made before gpsd knows the date carry no time: they are not timed
  epochs.

Where the agent and gpsd disagree, :data:`EXCEPTIONS` says who is right, and
why, from the NMEA itself. Each exception is checked: it fails once it no
longer applies.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from agent.fix import Fix
from agent.nmea import EpochAssembler, sentence
from agent.pipeline import Context, Pipeline
from agent.settings import FilterSettings, parse_settings
from agent.sources import SerialSource
from tests.agent.conftest import PtyPair, RunSource
from tests.services import in_ci

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "receivers"

LOGS = (
    "bu353-glonass",
    "cat-ms352",
    "firefly-II",
    "garmin-10x",
    "gp-320fw-2019-04-06-overflow",
    "haicom-305N",
    "hemi",
    "iTrek",
    "motorola-t805",
    "mr-350p",
    "mt3339",
    "nmea-rtk",
    "quectel-L70",
    "quectel-l76k-nmea",
    "sirfstarv-nmea",
    "skytraq-dgps",
    "st-teseo-liv4f",
    "triton400",
    "ublox-lea-4h",
    "ublox-neo-m9n-nmea",
)

# The oldest log is from 2005: the year floor comes down so they replay, and
# thinning goes so that every epoch the decoder delivers reaches the buffer.
FILTER: FilterSettings = parse_settings(
    {
        "server": {"url": "http://127.0.0.1"},
        "filter": {"min_year": 2000, "stationary_interval_s": 0, "moving_interval_s": 0},
    }
).filter

# gpsd rounds: positions to 9 decimals of a degree, speed to 3 decimals of m/s
# (mm/s), track to 4 decimals of a degree. Ours come unrounded from the same
# NMEA fields, so half a unit of gpsd's last digit (plus float noise) is all
# that may separate them.
POSITION_DEG = 1e-6  # the bar; ~0.1 m, far looser than the rounding
SPEED_MS = 0.5e-3 + 1e-9
TRACK_DEG = 0.5e-4 + 1e-9


@dataclass(frozen=True, slots=True)
class Extra:
    """An epoch the agent delivers that gpsd never reports as a timed fix."""

    time: str  # as gpsd would write it
    lat: float  # what the NMEA says, for checking what we deliver
    lon: float
    why: str


def _dm(degrees: int, minutes: float, negative: bool = False) -> float:
    value = degrees + minutes / 60.0
    return -value if negative else value


EXCEPTIONS: dict[str, tuple[Extra, ...]] = {
    "gp-320fw-2019-04-06-overflow": (
        Extra(
            "2019-04-06T23:57:26.020Z",
            _dm(48, 8.9978),
            _dm(11, 35.0800),
            "The log starts with a GLL, which gpsd takes for the end of its cycle; "
            "in the next epoch (RMC A, GGA quality 1 with 4 satellites, GSA 3D) it is "
            "still relearning the cycle and reports nothing. The NMEA says fix.",
        ),
    ),
    "motorola-t805": (
        Extra(
            "2007-12-18T21:26:14.879Z",
            _dm(48, 39.9488),
            _dm(2, 14.8863),
            "The first fix: gpsd reports it from the GGA before it has a date, then "
            "the RMC of the same epoch (A, with date 181207) completes it without a "
            "new report. We date the epoch from its own RMC.",
        ),
    ),
    "mr-350p": (
        Extra(
            "2012-07-04T05:11:33.000Z",
            _dm(47, 44.6977),
            _dm(122, 6.7277, negative=True),
            "GGA + ZDA receiver: the first GGA (quality 1, 5 satellites) comes before "
            "any ZDA, so gpsd reports it without a time. The ZDA of 05:11:34 that "
            "follows dates it: one second earlier on the same day. No system clock "
            "involved; without that ZDA we would deliver nothing for it either.",
        ),
    ),
    "ublox-lea-4h": (
        Extra(
            "2006-08-10T03:15:18.000Z",
            _dm(49, 7.56818),
            _dm(122, 42.61064, negative=True),
            "The last epoch: RMC A, GGA quality 1 with 9 satellites, GLL A. The log "
            "ends before its ZDA, which gpsd waits for as the end of the cycle; we "
            "close the epoch when the input ends (flush).",
        ),
    ),
}

_GPSD_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"
_STAMP = re.compile(
    r"^\$+[A-Z]{2}(RMC|GGA|GNS|ZDA),(\d{6}(?:\.\d+)?)|^\$+[A-Z]{2}GLL,(?:[^,]*,){4}(\d{6}(?:\.\d+)?)"
)


def corpus() -> Path:
    if not CORPUS.is_dir():
        message = f"receiver corpus not found at {CORPUS} (a checkout next to shared/)"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return CORPUS


def gpsd_time(text: str) -> datetime:
    return datetime.strptime(text, _GPSD_TIME).replace(tzinfo=UTC)


def _seconds_of_day(t: datetime) -> float:
    return t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6


def _stamp(line: str | None) -> float | None:
    """Seconds of day a time-bearing sentence carries; None for others."""
    match = _STAMP.match(line or "")
    if match is None:
        return None
    text = match.group(2) or match.group(3)
    return int(text[:2]) * 3600 + int(text[2:4]) * 60 + float(text[4:])


@dataclass(frozen=True, slots=True)
class Reference:
    fixes: dict[datetime, dict[str, Any]]  # epoch time -> gpsd's most complete 2D/3D TPV
    no_fix: frozenset[datetime]  # epochs gpsd reported only as mode 0/1


@cache
def gpsd_reference(name: str) -> Reference:
    reports: dict[datetime, list[tuple[str | None, dict[str, Any]]]] = {}
    trigger: str | None = None
    for line in (corpus() / f"{name}.log.chk").read_text("ascii", "replace").splitlines():
        if not line.startswith("{"):
            trigger = line
            continue
        tpv = json.loads(line)
        if tpv.get("class") == "TPV" and "time" in tpv:
            reports.setdefault(gpsd_time(tpv["time"]), []).append((trigger, tpv))
    fixes: dict[datetime, dict[str, Any]] = {}
    no_fix: set[datetime] = set()
    for when, seen in reports.items():
        good = [tpv for _, tpv in seen if tpv.get("mode", 0) >= 2]
        if not good:
            no_fix.add(when)
            continue
        fixes[when] = good[-1]
        had_fix = False
        for echoed, tpv in seen:
            if tpv.get("mode", 0) >= 2:
                had_fix = True
            elif had_fix:
                # Only the stale-stamp habit may follow a fix with a no-fix
                # report; anything else means gpsd changed its mind about the
                # epoch, and the rule above would hide that.
                stamp = _stamp(echoed)
                assert stamp is not None and not math.isclose(stamp, _seconds_of_day(when)), (
                    f"{name}: gpsd reports {when} as fix, then no fix after {echoed!r}"
                )
    return Reference(fixes, frozenset(no_fix))


@cache
def receiver_bytes(name: str) -> bytes:
    """The log as the receiver sent it: gpsd's ``#`` header lines are not NMEA."""
    data = (corpus() / f"{name}.log").read_bytes()
    lines = [line for line in data.splitlines(keepends=True) if not line.startswith(b"#")]
    out = b"".join(lines)
    return out if out.endswith(b"\n") else out + b"\r\n"


def through_pipeline(fixes: Iterable[Fix]) -> list[Fix]:
    pipeline = Pipeline(FILTER)
    # The system clock plays no part: unsynced, it can't veto GPS time.
    ctx = Context(now=SENTINEL_T, clock_synced=False)
    return [v.fix for fix in fixes if (v := pipeline.feed(fix, ctx)).fix is not None]


def assert_matches_gpsd(name: str, delivered: list[Fix]) -> None:
    ref = gpsd_reference(name)
    extras = {gpsd_time(e.time): e for e in EXCEPTIONS.get(name, ())}
    for when, extra in extras.items():
        assert when not in ref.fixes, f"{name}: exception {extra.time} no longer applies"
    ours = {fix.t: fix for fix in delivered}
    assert len(ours) == len(delivered), f"{name}: an epoch delivered twice"
    wanted = ref.fixes.keys() | extras.keys()
    missing = sorted(wanted - ours.keys())
    unexpected = sorted(ours.keys() - wanted)
    assert (missing, unexpected) == ([], []), (
        f"{name}: missing {[str(t) for t in missing]}, unexpected {[str(t) for t in unexpected]}"
        f" (of which gpsd's no-fix epochs: {[str(t) for t in unexpected if t in ref.no_fix]})"
    )
    for when, tpv in ref.fixes.items():
        fix = ours[when]
        where = f"{name} {tpv['time']}"
        assert abs(fix.lat - tpv["lat"]) <= POSITION_DEG, f"{where}: lat {fix.lat} {tpv['lat']}"
        assert abs(fix.lon - tpv["lon"]) <= POSITION_DEG, f"{where}: lon {fix.lon} {tpv['lon']}"
        if fix.speed is not None and "speed" in tpv:
            assert abs(fix.speed - tpv["speed"]) <= SPEED_MS, f"{where}: speed {fix.speed}"
        if fix.heading is not None and "track" in tpv:
            assert abs(fix.heading - tpv["track"]) <= TRACK_DEG, f"{where}: track {fix.heading}"
    for when, extra in extras.items():
        fix = ours[when]
        assert abs(fix.lat - extra.lat) <= POSITION_DEG and abs(fix.lon - extra.lon) <= POSITION_DEG
    assert_dimensions(name, ours, ref)


ALT_M = 0.05 + 1e-9  # GGA altitudes have one decimal


def receiver_gsa_mode(name: str, when: datetime) -> str | None:
    """The fix mode ("1", "2", "3") of the last GSA the receiver sent by the end of
    the epoch at ``when`` (its last time-bearing sentence), or None if none came."""
    lines = receiver_bytes(name).decode("ascii", errors="replace").splitlines()
    second = _seconds_of_day(when)
    last = max(i for i, line in enumerate(lines) if (t := _stamp(line)) is not None
               and math.isclose(t, second, abs_tol=1e-3))  # fmt: skip
    gsa = [line for line in lines[: last + 1] if re.match(r"^\$+[A-Z]{2}GSA,", line)]
    return gsa[-1].split(",")[2] if gsa else None


def assert_dimensions(name: str, ours: dict[datetime, Fix], ref: Reference) -> None:
    """2D or 3D as gpsd says, with gpsd's altitude for 3D and none for 2D; where gpsd
    says 3D and we say 2D, the receiver's own GSA said 2D. gpsd takes GGA's altitude
    for 3D even with 3 satellites (garmin-10x, ublox-lea-4h: too few for a height)
    or a GSA saying 2D (haicom-305N, iTrek); a height the receiver does not vouch
    for is not one to ship, so the receiver is right."""
    for when, tpv in ref.fixes.items():
        fix, where = ours[when], f"{name} {tpv['time']}"
        if fix.mode != tpv["mode"]:
            assert (fix.mode, tpv["mode"]) == (2, 3), f"{where}: mode {fix.mode} {tpv['mode']}"
            assert receiver_gsa_mode(name, when) == "2", f"{where}: 2D without the receiver's GSA"
        if fix.mode == 2:
            assert fix.alt is None, f"{where}: a 2D fix with altitude {fix.alt}"
        elif (gpsd_alt := tpv.get("altMSL", tpv.get("alt"))) is not None:
            assert fix.alt is not None and abs(fix.alt - gpsd_alt) <= ALT_M, (
                f"{where}: altitude {fix.alt} {gpsd_alt}"
            )


# An epoch after the log, with every position sentence the assembler knows, so
# that it completes on arrival whatever the receiver taught the assembler: when
# it comes out, everything written before it has been read and decoded.
SENTINEL_T = datetime(2030, 1, 1, 0, 0, 0, tzinfo=UTC)
_SENTINEL_POS = "4527.85200,N,00911.40000,E"
SENTINEL = "".join(
    sentence(body) + "\r\n"
    for body in (
        f"GNRMC,000000.00,A,{_SENTINEL_POS},0.0,,010130,,,A,V",
        f"GNGGA,000000.00,{_SENTINEL_POS},1,12,0.9,100.0,M,47.0,M,,",
        f"GNGNS,000000.00,{_SENTINEL_POS},AAAA,12,0.9,100.0,47.0,,,V",
        f"GNGLL,{_SENTINEL_POS},000000.00,A,A",
    )
).encode()


def test_the_corpus_holds_the_logs_the_exceptions_were_written_for() -> None:
    names = {p.name.removesuffix(".log") for p in corpus().glob("*.log")}
    assert names == set(LOGS)
    assert all((corpus() / f"{name}.log.chk").is_file() for name in LOGS)
    assert set(EXCEPTIONS) <= set(LOGS)


@pytest.mark.parametrize("name", LOGS)
def test_gpsd_reference_counts_match_the_corpus_readme(name: str) -> None:
    # The README's "epochs gpsd timed: fix / no fix" column was counted
    # independently of the reading of gpsd's habits above.
    row = next(
        line
        for line in (corpus() / "README.md").read_text().splitlines()
        if line.startswith(f"| {name} ")
    )
    fix, no_fix = (int(n) for n in row.split("|")[4].split("/"))
    ref = gpsd_reference(name)
    assert (len(ref.fixes), len(ref.no_fix)) == (fix, no_fix)


@pytest.mark.parametrize("name", LOGS)
def test_the_decoder_delivers_what_gpsd_decodes(name: str) -> None:
    assembler = EpochAssembler()
    lines = receiver_bytes(name).decode("ascii", errors="replace").splitlines()
    fixes = [fix for line in lines for fix in assembler.feed(line)] + assembler.flush()
    assert_matches_gpsd(name, through_pipeline(fixes))


@pytest.mark.parametrize("name", LOGS)
def test_a_receiver_on_a_serial_port_delivers_what_gpsd_decodes(
    name: str, pty_pair: Callable[[], PtyPair], run_source: RunSource
) -> None:
    data = receiver_bytes(name)
    pair = pty_pair()
    # read_timeout is long so that no pause of this busy box flushes an epoch
    # half-read; the sentinel closes the last one instead.
    source = SerialSource(pair.reader, baud=9600, read_timeout=10.0, reopen_delay=0.05, idle_s=0.1)
    running = run_source(source)
    running.wait_for(lambda _: source.port_open, "the port to open")
    # All at once: a pty has no baud rate, and the source must cope with
    # however the kernel splits the stream into reads.
    pair.write(data + SENTINEL)
    running.wait_for(lambda r: any(f.t == SENTINEL_T for f in r.fixes), "the sentinel epoch")
    fixes = [fix for fix in running.fixes if fix.t != SENTINEL_T]
    assert_matches_gpsd(name, through_pipeline(fixes))
