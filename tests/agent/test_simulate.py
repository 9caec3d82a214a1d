"""The route simulator: believable buses, valid NMEA, the same file for the same seed."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pynmea2
import pytest

from agent.fix import Fix
from agent.nmea import EpochAssembler
from agent.simulate import route_nmea, write_route

START = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
CENTER = (45.4642, 9.19)


def fixes_of(lines: list[str]) -> list[Fix]:
    assembler = EpochAssembler()
    out = [fix for line in lines for fix in assembler.feed(line)]
    assert assembler.rejected == 0
    return out + assembler.flush()


def metres(a: Fix, b: Fix) -> float:
    dy = (b.lat - a.lat) * 111_320
    dx = (b.lon - a.lon) * 111_320 * math.cos(math.radians(a.lat))
    return math.hypot(dx, dy)


@pytest.fixture(scope="module")
def hour() -> list[Fix]:
    return fixes_of(list(route_nmea(11, START, 3600)))


def test_same_seed_same_lines_other_seed_other_route() -> None:
    assert list(route_nmea(5, START, 120)) == list(route_nmea(5, START, 120))
    assert list(route_nmea(5, START, 120)) != list(route_nmea(6, START, 120))


def test_every_line_is_checksummed_nmea_as_a_u_blox_writes_it() -> None:
    lines = list(route_nmea(1, START, 30, talker="GN"))
    assert len(lines) == 30 * 4
    kinds = [pynmea2.parse(line, check=True) for line in lines]
    assert [(k.talker, k.sentence_type) for k in kinds[:4]] == [
        ("GN", "RMC"),
        ("GN", "GGA"),
        ("GN", "GSA"),
        ("GN", "GSA"),
    ]
    # NMEA 4.11: RMC ends with FAA mode A and navigational status V ("not
    # provided"); each GSA with its system id (1 GPS, 3 Galileo).
    rmc, gga, gsa_gps, gsa_galileo = kinds[:4]
    assert (rmc.mode_indicator, rmc.nav_status) == ("A", "V")
    assert gsa_gps.data[-1] == "1" and gsa_galileo.data[-1] == "3"
    used = sum(1 for gsa in (gsa_gps, gsa_galileo) for sv in gsa.data[2:14] if sv)
    assert used == int(gga.num_sats)
    gp = list(route_nmea(1, START, 2, talker="GP", gsv=True))
    assert {pynmea2.parse(line, check=True).sentence_type for line in gp} == {
        "RMC",
        "GGA",
        "GSA",
        "GSV",
    }


def test_one_fix_per_epoch_at_the_requested_rate(hour: list[Fix]) -> None:
    assert len(hour) == 3600
    assert [f.t for f in hour[:2]] == [START, START + timedelta(seconds=1)]
    fast = fixes_of(list(route_nmea(11, START, 10, rate_hz=5.0)))
    assert len(fast) == 50 and fast[1].t - fast[0].t == timedelta(milliseconds=200)


def test_cold_start_talks_without_a_fix() -> None:
    lines = list(route_nmea(2, START, 20, cold_start_s=8))
    fixes = fixes_of(lines)
    assert len(fixes) == 12 and fixes[0].t == START + timedelta(seconds=8)
    assert pynmea2.parse(lines[0]).status == "V"


def test_the_bus_drives_like_a_bus(hour: list[Fix]) -> None:
    speeds = [f.speed for f in hour]
    assert all(s is not None and 0.0 <= s <= 14.5 for s in speeds)
    assert max(s or 0.0 for s in speeds) > 10.0  # it does get going between stops
    for a, b in itertools.pairwise(hour):
        assert abs((b.speed or 0.0) - (a.speed or 0.0)) <= 2.0  # no teleporting speedometer
        assert metres(a, b) <= 14.5 + 12.0  # distance per second, plus GPS wander
    # Heading points where the bus goes (when it is moving fast enough to tell).
    for a, b in itertools.pairwise(hour):
        if (a.speed or 0) > 8 and (b.speed or 0) > 8 and a.heading == b.heading:
            north = (b.lat - a.lat) * 111_320
            east = (b.lon - a.lon) * 111_320 * math.cos(math.radians(a.lat))
            travel = math.degrees(math.atan2(east, north)) % 360
            off = abs((travel - (a.heading or 0) + 180) % 360 - 180)
            assert off < 45


def test_it_dwells_at_stops_for_10_to_30_seconds(hour: list[Fix]) -> None:
    runs, current = [], 0
    for fix in hour:
        if fix.speed == 0.0:
            current += 1
        elif current:
            runs.append(current)
            current = 0
    assert len(runs) >= 20  # an hour of city driving stops a lot
    assert all(runs) and max(runs) <= 31
    assert sum(1 for r in runs if r >= 10) >= 10
    # A stopped bus has no course; the receiver says so with an empty field.
    assert all(f.heading is None for f in hour if f.speed == 0.0)


def test_it_loops_a_route_of_a_few_km_around_the_center(hour: list[Fix]) -> None:
    lats, lons = [f.lat for f in hour], [f.lon for f in hour]
    assert all(
        abs(lat - CENTER[0]) < 0.03 and abs(lon - CENTER[1]) < 0.04
        for lat, lon in zip(lats, lons, strict=True)
    )
    length = sum(metres(a, b) for a, b in itertools.pairwise(hour))
    assert length > 10_000  # several laps of a few-km loop in an hour
    # It comes back: some later point is within 30 m of the first one.
    assert any(metres(hour[0], f) < 30 for f in hour[300:])


def test_receiver_figures_are_plausible(hour: list[Fix]) -> None:
    assert all(f.mode == 3 for f in hour)
    assert all(f.hdop is not None and 0.5 <= f.hdop <= 2.5 for f in hour)
    assert all(f.sats is not None and 5 <= f.sats <= 20 for f in hour)
    assert all(f.alt is not None and 90 < f.alt < 150 for f in hour)
    assert len({f.hdop for f in hour}) > 20  # they drift rather than sit still


def test_midnight_changes_the_date_in_rmc() -> None:
    start = datetime(2026, 12, 31, 23, 59, 58, tzinfo=UTC)
    fixes = fixes_of(list(route_nmea(4, start, 4)))
    assert [f.t.date().isoformat() for f in fixes] == ["2026-12-31"] * 2 + ["2027-01-01"] * 2


def test_local_start_times_are_converted_to_utc_and_naive_ones_refused() -> None:
    rome = timezone(timedelta(hours=1))
    [fix] = fixes_of(list(route_nmea(4, datetime(2026, 11, 29, 9, 0, tzinfo=rome), 1)))
    assert fix.t == START
    with pytest.raises(ValueError):
        list(route_nmea(4, datetime(2026, 11, 29, 9, 0), 1))


def test_write_route_writes_crlf_lines(tmp_path: Path) -> None:
    path = write_route(tmp_path / "bus.nmea", 9, START, 5, center=(48.2082, 16.3738))
    data = path.read_bytes()
    assert data.count(b"\r\n") == 5 * 4 and data.endswith(b"\r\n")
    fixes = fixes_of(data.decode().splitlines())
    assert len(fixes) == 5 and abs(fixes[0].lat - 48.2082) < 0.03
