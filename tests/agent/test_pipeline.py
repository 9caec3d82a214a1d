from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from agent.fix import Fix
from agent.pipeline import BUILD_YEAR, Context, Pipeline, heading_delta
from agent.settings import FilterSettings

T0 = datetime(2026, 11, 29, 8, 0, 0, tzinfo=UTC)
CTX = Context(now=T0, clock_synced=True)
NO_THINNING = FilterSettings(stationary_interval_s=0, moving_interval_s=0)


def fix(s: float, lat: float = 45.0, lon: float = 9.0, **kw: object) -> Fix:
    base: dict[str, object] = {"speed": 10.0, "heading": 90.0, "mode": 3}
    base.update(kw)
    return Fix(T0 + timedelta(seconds=s), lat, lon, **base)  # type: ignore[arg-type]


def run(
    fixes: list[Fix], cfg: FilterSettings = NO_THINNING, ctx: Context = CTX
) -> tuple[list[Fix], Pipeline]:
    p = Pipeline(cfg)
    return [v.fix for f in fixes if (v := p.feed(f, ctx)).fix is not None], p


def test_drops_no_fix_but_trusts_unknown_mode() -> None:
    kept, p = run([fix(0, mode=1), fix(1, mode=2), fix(2, mode=None)])
    assert [f.mode for f in kept] == [2, None]
    assert p.dropped == {"no_fix": 1}


def test_drops_null_island_and_out_of_range() -> None:
    kept, p = run([fix(0, lat=0.0, lon=0.0), fix(1, lat=91.0), fix(2, lon=float("nan")), fix(3)])
    assert len(kept) == 1
    assert p.dropped == {"null_island": 1, "out_of_range": 2}


def test_drops_times_before_build_year() -> None:
    old = replace(fix(0), t=datetime(BUILD_YEAR - 20, 3, 1, tzinfo=UTC))  # week rollover
    kept, p = run([old, fix(1)])
    assert len(kept) == 1 and p.dropped == {"before_min_year": 1}


def test_a_lowered_min_year_lets_an_old_field_log_replay() -> None:
    drive = [replace(fix(s), t=datetime(2007, 4, 8, 9, 53, s, tzinfo=UTC)) for s in range(3)]
    kept, p = run(drive, replace(NO_THINNING, min_year=2007))
    assert kept == drive and p.dropped == {}
    kept, p = run(drive, replace(NO_THINNING, min_year=2008))
    assert kept == [] and p.dropped == {"before_min_year": 3}


def test_future_only_when_clock_is_synced() -> None:
    future = fix(3600)
    _, synced = run([future], ctx=Context(now=T0, clock_synced=True))
    assert synced.dropped == {"future": 1}
    kept, _ = run([future], ctx=Context(now=T0 - timedelta(days=900), clock_synced=False))
    assert kept == [future]  # a Pi without RTC: its clock can't veto GPS time
    kept, _ = run([fix(200)], ctx=CTX)
    assert len(kept) == 1  # within max_future_s


def test_drops_exact_repeats() -> None:
    kept, p = run([fix(0), fix(1), fix(1), fix(0), fix(2)])
    assert [f.t for f in kept] == [fix(0).t, fix(1).t, fix(2).t]
    assert p.dropped == {"repeat": 2}


def test_drops_impossible_jump_and_recovers() -> None:
    a = fix(0)
    glitch = fix(1, lat=46.0)  # 111 km in one second
    kept, p = run([a, glitch, fix(2, lat=45.0001)])
    assert glitch not in kept and len(kept) == 2
    assert p.dropped == {"jump": 1}


def test_reanchors_after_agreeing_jumps() -> None:
    # The first fix was the glitch: five fixes that agree with each other win.
    bad_anchor = fix(0, lat=46.0)
    real = [fix(i, lat=45.0 + i * 1e-5) for i in range(1, 8)]
    kept, p = run([bad_anchor, *real])
    assert p.dropped == {"jump": 4}
    assert kept[0] == bad_anchor and kept[1:] == real[4:]


def test_disagreeing_jumps_do_not_reanchor() -> None:
    noise = [fix(i, lat=45.0 + (i % 2) * 2 - 1) for i in range(1, 10)]  # 44, 46, 44...
    kept, p = run([fix(0), *noise])
    assert len(kept) == 1 and p.dropped == {"jump": 9}


def test_time_going_backwards_restarts_from_that_fix() -> None:
    kept, _ = run([fix(100), fix(0, lat=45.5), fix(1, lat=45.5)])
    assert len(kept) == 3


def test_stationary_thinning() -> None:
    cfg = FilterSettings(stationary_interval_s=30)
    stopped = [fix(i, speed=0.1) for i in range(0, 95)]
    kept, p = run(stopped, cfg)
    assert [(f.t - T0).total_seconds() for f in kept] == [0, 30, 60, 90]
    assert p.dropped["stationary"] == 91


def test_motion_change_is_always_kept() -> None:
    cfg = FilterSettings(stationary_interval_s=30)
    seq = [fix(0, speed=5), fix(1, speed=5), fix(2, speed=0.0), fix(3, speed=0.0), fix(4, speed=4)]
    kept, _ = run(seq, cfg)
    assert [(f.t - T0).total_seconds() for f in kept] == [0, 1, 2, 4]


def test_heading_changes_kept_while_moving() -> None:
    cfg = FilterSettings(moving_interval_s=10, heading_change_deg=15)
    seq = [
        fix(0, heading=90),
        fix(1, heading=95),
        fix(2, heading=100),
        fix(3, heading=110),
        fix(4, heading=112),
        fix(13, heading=112),
    ]
    kept, _ = run(seq, cfg)
    assert [(f.t - T0).total_seconds() for f in kept] == [0, 3, 13]


def test_defaults_keep_every_moving_fix() -> None:
    seq = [fix(i, lat=45.0 + i * 1e-4) for i in range(20)]
    kept, _ = run(seq, FilterSettings())
    assert kept == seq


def test_speed_is_derived_when_missing() -> None:
    cfg = FilterSettings(stationary_interval_s=30)
    seq = [fix(i, speed=None) for i in range(10)]  # same place: stationary
    kept, _ = run(seq, cfg)
    assert len(kept) == 2  # the first, then the change to "stopped" at the second


def test_heading_delta_wraps() -> None:
    assert heading_delta(350, 10) == 20
    assert heading_delta(10, 350) == 20
    assert heading_delta(0, 180) == 180
