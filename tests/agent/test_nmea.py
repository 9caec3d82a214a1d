"""EpochAssembler: NMEA lines from any receiver become exactly one Fix per epoch."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from agent.fix import Fix
from agent.nmea import KNOT_MS, EpochAssembler, checksum, sentence
from agent.simulate import route_nmea
from tests.agent.conftest import DATA

POS = "4527.85200,N,00911.40000,E"  # 45.4642 N, 9.19 E


def rmc(
    t: str, status: str = "A", pos: str = POS, mode: str = "A", talker: str = "GP", nav: str = ""
) -> str:
    body = f"{talker}RMC,{t},{status},{pos},12.5,271.3,291126,,,{mode}"
    return sentence(body + (f",{nav}" if nav else ""))


def gga(
    t: str,
    quality: int = 1,
    pos: str = POS,
    alt: str = "121.4",
    talker: str = "GP",
    sats: str = "09",
) -> str:
    return sentence(f"{talker}GGA,{t},{pos},{quality},{sats},0.87,{alt},M,47.0,M,,")


def gns(t: str, modes: str = "AAAN", pos: str = POS, sats: str = "14", nav: str = "V") -> str:
    return sentence(f"GNGNS,{t},{pos},{modes},{sats},0.87,121.4,47.0,,,{nav}")


def gll(t: str, status: str = "A", mode: str = "A", pos: str = POS) -> str:
    return sentence(f"GNGLL,{pos},{t},{status},{mode}")


def feed_all(lines: list[str], assembler: EpochAssembler | None = None) -> list[Fix]:
    assembler = assembler or EpochAssembler()
    out: list[Fix] = []
    for line in lines:
        out.extend(assembler.feed(line))
    return out + assembler.flush()


def read_log(name: str) -> list[str]:
    return (DATA / name).read_bytes().decode("ascii", errors="replace").splitlines()


def test_rmc_and_gga_of_one_epoch_merge_into_one_fix() -> None:
    [fix] = feed_all([rmc("080009.00"), gga("080009.00")])
    assert fix.t == datetime(2026, 11, 29, 8, 0, 9, tzinfo=UTC)
    assert fix.lat == pytest.approx(45.4642) and fix.lon == pytest.approx(9.19)
    assert fix.speed == pytest.approx(12.5 * 1852 / 3600)  # knots to m/s
    assert (fix.alt, fix.heading, fix.hdop, fix.sats, fix.mode) == (121.4, 271.3, 0.87, 9, 3)


def test_fix_is_emitted_as_soon_as_the_epoch_is_complete_not_one_second_later() -> None:
    assembler = EpochAssembler()
    assert assembler.feed(rmc("080009.00")) == []
    [fix] = assembler.feed(gga("080009.00"))
    assert fix.t.second == 9
    # Either order works: GGA first, RMC completes it.
    assert assembler.feed(gga("080010.00")) == []
    assert [f.t.second for f in assembler.feed(rmc("080010.00"))] == [10]
    assert assembler.flush() == []


@pytest.mark.parametrize("talker", ["GP", "GN", "GL", "GA", "GB"])
def test_any_talker_is_understood(talker: str) -> None:
    [fix] = feed_all([rmc("080009.00", talker=talker), gga("080009.00", talker=talker)])
    assert fix.mode == 3 and fix.lat == pytest.approx(45.4642)


def test_fractional_seconds_and_southern_western_hemispheres() -> None:
    pos = "3352.12345,S,15112.54321,W"
    [fix] = feed_all([rmc("235959.50", pos=pos), gga("235959.50", pos=pos)])
    assert fix.t == datetime(2026, 11, 29, 23, 59, 59, 500_000, tzinfo=UTC)
    assert fix.lat == pytest.approx(-(33 + 52.12345 / 60))
    assert fix.lon == pytest.approx(-(151 + 12.54321 / 60))


def test_bad_or_missing_checksum_and_garbage_are_rejected_without_raising() -> None:
    good = rmc("080009.00")
    wrong = good[:-2] + ("00" if good[-2:] != "00" else "11")
    truncated = good.split("*")[0]  # pynmea2 would parse this without check=True
    assembler = EpochAssembler()
    for line in [wrong, truncated, "\ufffd\ufffd\x00garbage", "$", "*", "$GPXXX,1,2*00", ""]:
        assert assembler.feed(line) == []
    assert assembler.rejected == 6  # the empty line is not a rejection, just nothing
    assert assembler.flush() == []


def test_random_bytes_never_raise() -> None:
    rng = random.Random(1)
    assembler = EpochAssembler()
    for _ in range(3000):
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(90)))
        assembler.feed(junk.decode("ascii", errors="replace"))
    # And fields that pass the checksum but make no sense are skipped too.
    for body in [
        "GPRMC,99x,A,,,,,,,",
        "GPGGA,080009.00,45a7.8,N,009,E,Q,x,y,z,M,,,,",
        "GPZDA,1,2,3,x",
    ]:
        assert assembler.feed(sentence(body)) == []
    assert assembler.flush() == []


def test_a_malformed_field_does_not_lose_the_previous_epoch() -> None:
    assembler = EpochAssembler()
    assembler.feed(rmc("080009.00"))  # GGA of :09 never comes
    broken = sentence(f"GPRMC,080010.00,A,{POS},fast,271.3,291126,,,A")
    assert assembler.feed(broken) == []
    fix = assembler.feed(rmc("080011.00"))[0]  # closes :09, which still carries its data
    assert fix.t.second == 9 and fix.speed == pytest.approx(12.5 * KNOT_MS)


def test_date_carries_across_gga_only_epochs_and_rolls_over_at_midnight() -> None:
    fixes = feed_all(read_log("midnight.nmea"))
    assert [f.t.isoformat() for f in fixes] == [
        "2026-12-31T23:59:57+00:00",
        "2026-12-31T23:59:58+00:00",
        "2026-12-31T23:59:59+00:00",
        "2027-01-01T00:00:00+00:00",
        "2027-01-01T00:00:01+00:00",
        "2027-01-01T00:00:02+00:00",
        "2027-01-01T00:00:03+00:00",
    ]
    # Each GGA-only epoch keeps its own position, not the last RMC's.
    assert len({f.lat for f in fixes}) == 7


def test_a_small_step_back_in_time_does_not_jump_a_day_ahead() -> None:
    fixes = feed_all([rmc("080010.00"), gga("080010.00"), gga("080009.00"), gga("080011.00")])
    assert [f.t.isoformat() for f in fixes] == [
        "2026-11-29T08:00:10+00:00",
        "2026-11-29T08:00:09+00:00",
        "2026-11-29T08:00:11+00:00",
    ]


def test_no_date_no_fix_until_rmc_or_zda_gives_one() -> None:
    assembler = EpochAssembler()
    assert feed_all([gga("080009.00"), gga("080010.00")], assembler) == []
    assert assembler.feed(sentence("GPZDA,080011.00,29,11,2026,00,00")) == []
    fixes = feed_all([gga("080012.00"), gga("080013.00")], assembler)
    assert [f.t.isoformat() for f in fixes] == [
        "2026-11-29T08:00:12+00:00",
        "2026-11-29T08:00:13+00:00",
    ]


def test_invalid_epochs_with_a_position_come_out_as_mode_1() -> None:
    fixes = feed_all(
        [
            rmc("080001.00", status="V"),
            gga("080001.00"),
            rmc("080002.00"),
            gga("080002.00", quality=0),
            # Dead reckoning: the receiver invents positions from the last speed
            # and heading (tunnel, bridge); never store them as measured.
            rmc("080003.00", mode="E"),
            gga("080003.00", quality=6),
            rmc("080004.00", mode="N"),
            gga("080004.00"),
            rmc("080005.00", mode="D"),
            gga("080005.00", quality=2),
        ]
    )
    assert [(f.t.second, f.mode) for f in fixes] == [(1, 1), (2, 1), (3, 1), (4, 1), (5, 3)]


def test_no_position_means_no_fix_at_all() -> None:
    empty = ",,,"
    assert feed_all([rmc("080001.00", status="V", pos=empty), gga("080001.00", 0, pos=empty)]) == []


def test_gsa_supplies_2d_mode_and_a_2d_fix_has_no_altitude() -> None:
    gsa2 = sentence("GNGSA,A,2,01,02,03,,,,,,,,,,2.1,1.7,1.3")
    fixes = feed_all([gsa2, rmc("080001.00"), gga("080001.00", alt="")])
    assert [(f.mode, f.alt) for f in fixes] == [(2, None)]
    gsa3 = sentence("GNGSA,A,3,01,02,03,04,,,,,,,,,2.1,1.7,1.3")
    fixes = feed_all([gsa3, rmc("080001.00"), gga("080001.00")])
    assert [(f.mode, f.alt) for f in fixes] == [(3, 121.4)]


def test_a_receiver_sending_only_rmc_gets_prompt_fixes_after_one_epoch() -> None:
    assembler = EpochAssembler()
    assert assembler.feed(rmc("080001.00")) == []  # GGA may still come
    # :02 closes :01; learned: this receiver sends RMC only, so :02 itself is
    # complete on arrival, and so is every later epoch.
    assert [f.t.second for f in assembler.feed(rmc("080002.00"))] == [1, 2]
    assert [f.t.second for f in assembler.feed(rmc("080003.00"))] == [3]
    assert [f.t.second for f in assembler.feed(rmc("080004.00"))] == [4]
    assert assembler.flush() == []


def test_a_straggler_for_an_emitted_epoch_is_not_a_second_fix() -> None:
    assembler = EpochAssembler()
    fixes = feed_all([rmc("080001.00"), gga("080001.00"), gga("080001.00")], assembler)
    assert len(fixes) == 1
    # A late sentence from the previous second does not reopen it either.
    fixes = feed_all([rmc("080002.00"), gga("080003.00"), rmc("080002.00"), rmc("080003.00")])
    assert [f.t.second for f in fixes] == [2, 3]


def test_dirty_log_yields_its_seven_epochs() -> None:
    assembler = EpochAssembler()
    fixes = feed_all(read_log("dirty.nmea"), assembler)
    assert [(f.t.second, f.mode) for f in fixes] == [
        (0, 3),  # GLONASS talker
        (1, 3),  # GGA only: the RMC had a bad checksum; date carried over
        (2, 2),  # RMC only: the GGA was cut before its checksum
        (3, 3),  # junk before '$' skipped
        (4, 1),
        (5, 1),
        (6, 3),
    ]
    assert fixes[1].speed is None and fixes[1].alt == 121.5
    assert fixes[2].speed == pytest.approx(10 * KNOT_MS) and fixes[2].alt is None
    assert assembler.rejected == 8  # 4 comments, garbage, checksum, 2 truncated


def test_every_simulated_epoch_becomes_exactly_one_fix() -> None:
    start = datetime(2026, 11, 29, 23, 59, 0, tzinfo=UTC)
    lines = list(route_nmea(3, start, 120, cold_start_s=10, rate_hz=2.0))
    fixes = feed_all(lines)
    assert len(fixes) == (120 - 10) * 2
    times = [f.t for f in fixes]
    assert times == sorted(set(times))
    assert times[0] == datetime(2026, 11, 29, 23, 59, 10, tzinfo=UTC)
    assert times[-1] == datetime(2026, 11, 30, 0, 0, 59, 500_000, tzinfo=UTC)


def test_sentence_helper_frames_with_a_valid_checksum() -> None:
    assert (
        checksum("GPGGA,184353.07,1929.045,S,02410.506,E,1,04,2.6,100.00,M,-33.9,M,,0000") == "6D"
    )
    assert sentence("GPZDA,1,2") == f"$GPZDA,1,2*{checksum('GPZDA,1,2')}"


# -- validity as gpsd decodes it (docs/decisions.md, "NMEA validity follows gpsd") --


def test_nav_status_v_is_not_provided_rather_than_invalid() -> None:
    # NMEA 4.11 as a u-blox M9 or Quectel L76K sends it: FAA mode A, nav status V.
    fixes = feed_all(
        [
            rmc("080001.00", talker="GN", nav="V"),
            gga("080001.00", talker="GN"),
            rmc("080002.00", talker="GN", mode="N", nav="V"),
            gga("080002.00", talker="GN", quality=0),
        ]
    )
    assert [(f.t.second, f.mode) for f in fixes] == [(1, 3), (2, 1)]


@pytest.mark.parametrize("talker", ["GP", "GN"])
def test_a_gga_using_fewer_than_3_satellites_is_no_fix(talker: str) -> None:
    # Cold-start receivers print quality 1 with 0-2 satellites in use.
    fixes = feed_all(
        [
            gga("080001.00", sats="00", talker=talker),
            rmc("080001.00", talker=talker),
            gga("080002.00", sats="02", talker=talker),
            rmc("080002.00", talker=talker),
            gga("080003.00", sats="03", talker=talker),
            rmc("080003.00", talker=talker),
        ]
    )
    assert [(f.t.second, f.mode) for f in fixes] == [(1, 1), (2, 1), (3, 3)]


def test_a_per_constellation_gga_with_few_satellites_still_counts() -> None:
    # SiRFstarV: GPGGA with the GPS count, then GLGGA with the GLONASS count only.
    lines = [gga("080001.00", sats="08"), gga("080001.00", sats="02", talker="GL")]
    [fix] = feed_all([*lines, rmc("080001.00", talker="GN")])
    assert (fix.mode, fix.sats) == (3, 8)


def test_gns_is_a_position_source_merged_with_rmc() -> None:
    [fix] = feed_all([rmc("080001.00", talker="GN", nav="V"), gns("080001.00")])
    assert fix.t == datetime(2026, 11, 29, 8, 0, 1, tzinfo=UTC)
    assert fix.lat == pytest.approx(45.4642) and fix.lon == pytest.approx(9.19)
    assert (fix.alt, fix.hdop, fix.sats, fix.mode) == (121.4, 0.87, 14, 3)
    assert fix.speed == pytest.approx(12.5 * KNOT_MS)


def test_gns_mode_has_one_character_per_constellation() -> None:
    fixes = feed_all(
        [
            rmc("080001.00", talker="GN"),
            gns("080001.00", modes="NA"),  # GLONASS only: still a fix
            rmc("080002.00", talker="GN"),
            gns("080002.00", modes="NNNN"),
            rmc("080003.00", talker="GN"),
            gns("080003.00", modes="EE"),  # dead reckoning in every system
        ]
    )
    assert [(f.t.second, f.mode) for f in fixes] == [(1, 3), (2, 1), (3, 1)]


def test_a_gns_only_receiver_dates_its_epochs_from_zda() -> None:
    fixes = feed_all(
        [
            sentence("GNZDA,080000.00,29,11,2026,00,00"),
            gns("080001.00"),
            gns("080002.00", nav="S"),
        ]
    )
    assert [(f.t.isoformat(), f.mode) for f in fixes] == [
        ("2026-11-29T08:00:01+00:00", 3),
        ("2026-11-29T08:00:02+00:00", 3),
    ]


def test_gll_alone_carries_an_epoch_whose_gga_was_lost() -> None:
    # Magellan Triton 400: GLL, GGA, RMC per epoch; one GGA cut off mid-sentence
    # and that epoch's RMC missing, so only its GLL says where the bus was.
    cut = gga("080002.00")[:14]
    pos2 = "4527.90000,N,00911.40000,E"
    lines = [gll("080001.00"), gga("080001.00"), rmc("080001.00"), gll("080002.00", pos=pos2)]
    fixes = feed_all([*lines, cut + gll("080003.00"), gga("080003.00"), rmc("080003.00")])
    assert [f.t.second for f in fixes] == [1, 2, 3]
    assert fixes[1].lat == pytest.approx(45 + 27.9 / 60) and fixes[1].mode == 2
    assert fixes[1].alt is None and fixes[1].speed is None


def test_gll_status_and_mode_decide_its_validity() -> None:
    fixes = feed_all(
        [
            rmc("080001.00"),
            gll("080001.00", status="V"),
            rmc("080002.00"),
            gll("080002.00", mode="N"),
            rmc("080003.00"),
            gll("080003.00", mode="D"),
        ]
    )
    assert [(f.t.second, f.mode) for f in fixes] == [(1, 1), (2, 1), (3, 2)]


def test_a_gsa_inside_the_epoch_saying_no_fix_makes_it_no_fix() -> None:
    # SiRF order: GGA, GSA, RMC. The GSA of the open epoch belongs to it.
    gsa1 = sentence("GPGSA,A,1,,,,,,,,,,,,,50.0,50.0,50.0")
    fixes = feed_all([gga("080001.00"), gsa1, rmc("080001.00")])
    assert [f.mode for f in fixes] == [1]


def test_one_constellation_without_a_fix_does_not_veto_the_others() -> None:
    gps = sentence("GNGSA,A,3,01,02,03,04,,,,,,,,,2.1,1.7,1.3,1")
    beidou = sentence("GNGSA,A,1,,,,,,,,,,,,,2.1,1.7,1.3,4")
    fixes = feed_all([gga("080001.00", talker="GN"), gps, beidou, rmc("080001.00", talker="GN")])
    assert [f.mode for f in fixes] == [3]


def test_a_gsa_after_the_epoch_left_does_not_veto_the_next_one() -> None:
    # u-blox order: RMC, GGA, GSA. The first epoch with a fix follows a GSA
    # that still said "no fix"; its own RMC and GGA decide.
    gsa1 = sentence("GNGSA,A,1,,,,,,,,,,,,,99.99,99.99,99.99,1")
    gsa3 = sentence("GNGSA,A,3,01,02,03,04,,,,,,,,,2.1,1.7,1.3,1")
    no_fix = [rmc("080001.00", status="V", pos=",,,"), gga("080001.00", 0, pos=",,,"), gsa1]
    fixes = feed_all([*no_fix, rmc("080002.00"), gga("080002.00"), gsa3])
    assert [(f.t.second, f.mode) for f in fixes] == [(2, 3)]


def test_a_malformed_gsa_is_ignored() -> None:
    # The i.Trek M3 sends this while it has a fix.
    broken = sentence("GPGSA,A,1,,,")
    fixes = feed_all([gga("080001.00"), broken, rmc("080001.00")])
    assert [f.mode for f in fixes] == [3]
