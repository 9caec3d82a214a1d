"""The fix pipeline: which GPS fixes are worth keeping. Pure functions, no I/O.

Like structlog processors, each step is a small function of the fix, the
pipeline state, a context (the system clock and whether it can be trusted)
and the ``[filter]`` settings. A step returns the new state and either None
(pass the fix on) or the reason it dropped the fix. :func:`process` runs the
steps in order and stops at the first drop.

Defaults (all in ``[filter]``, see docs/agent.md):

- ``min_mode = 2``: no-fix epochs (mode 1) are dropped; sources report RMC
  status V and GGA quality 0 as mode 1.
- the 0,0 point and coordinates outside -90..90 / -180..180 are dropped.
- fix times before January 1st of ``min_year`` (default :data:`BUILD_YEAR`)
  are dropped (the GPS week rollover bug throws receivers back ~19.7 years;
  lower it to replay an old field log), and so are times more than
  ``max_future_s = 300`` ahead of the system clock, but only when the system
  clock is known to be synced: a Pi has no RTC, so an unsynced clock may be
  years off and must never veto a GPS time.
- exact repeats (same ``t`` as one of the recent fixes) are dropped.
- a jump faster than ``max_speed_ms = 60`` m/s from the last plausible fix
  (after ``jump_slack_m = 50`` m of position noise) is dropped; after
  ``jump_reanchor = 5`` consecutive jumps that agree with each other the
  pipeline trusts the new place (the anchor itself was the glitch, or the unit
  was carried somewhere with the GPS off).
- while stationary (``speed < stationary_speed_ms = 0.5``) one fix per
  ``stationary_interval_s = 30`` s is kept; while moving one per
  ``moving_interval_s = 0`` s (0 keeps them all), plus any fix whose heading
  changed by more than ``heading_change_deg = 15`` since the last kept one.
  A change between moving and stopped always keeps the fix. Setting both
  intervals to 0 disables thinning.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from agent.fix import Fix
from agent.settings import BUILD_YEAR as BUILD_YEAR  # the default min_year, re-exported
from agent.settings import FilterSettings

_RECENT = 32  # how many recent fix times are remembered for exact-repeat detection
_EARTH_M = 6_371_008.8


@dataclass(frozen=True, slots=True)
class State:
    anchor: Fix | None = None  # last fix that passed the plausibility checks
    kept: Fix | None = None  # last fix the pipeline let through
    recent: tuple[datetime, ...] = ()
    candidate: Fix | None = None  # last rejected jump, to see whether jumps agree
    streak: int = 0  # consecutive jumps that agree with each other
    moving: bool | None = None


@dataclass(frozen=True, slots=True)
class Context:
    now: datetime  # system clock, tz-aware
    clock_synced: bool


@dataclass(frozen=True, slots=True)
class Verdict:
    state: State
    fix: Fix | None  # the fix to buffer, or None when dropped
    reason: str | None = None  # why it was dropped


Step = Callable[[Fix, State, Context, FilterSettings], tuple[State, str | None]]


def distance_m(a: Fix, b: Fix) -> float:
    """Great-circle distance (haversine): plenty for seconds-apart fixes."""
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp, dl = p2 - p1, math.radians(b.lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_M * math.asin(min(1.0, math.sqrt(h)))


def heading_delta(a: float, b: float) -> float:
    """Smallest angle between two headings, 0..180."""
    d = abs(a - b) % 360.0
    return 360.0 - d if d > 180.0 else d


def drop_no_fix(
    fix: Fix, state: State, ctx: Context, cfg: FilterSettings
) -> tuple[State, str | None]:
    # A source that can't tell (mode None) is trusted: lat/lon checks follow.
    if fix.mode is not None and fix.mode < cfg.min_mode:
        return state, "no_fix"
    return state, None


def drop_bad_position(
    fix: Fix, state: State, ctx: Context, cfg: FilterSettings
) -> tuple[State, str | None]:
    if not (math.isfinite(fix.lat) and math.isfinite(fix.lon)):
        return state, "out_of_range"
    if fix.lat == 0.0 and fix.lon == 0.0:
        return state, "null_island"
    if not (-90.0 <= fix.lat <= 90.0 and -180.0 <= fix.lon <= 180.0):
        return state, "out_of_range"
    return state, None


def drop_bad_time(
    fix: Fix, state: State, ctx: Context, cfg: FilterSettings
) -> tuple[State, str | None]:
    if fix.t.tzinfo is None:
        return state, "no_timezone"
    if fix.t.year < cfg.min_year:
        return state, "before_min_year"
    if ctx.clock_synced and (fix.t - ctx.now).total_seconds() > cfg.max_future_s:
        return state, "future"
    return state, None


def drop_repeat(
    fix: Fix, state: State, ctx: Context, cfg: FilterSettings
) -> tuple[State, str | None]:
    if fix.t in state.recent:
        return state, "repeat"
    return replace(state, recent=(*state.recent[-(_RECENT - 1) :], fix.t)), None


def _implied_speed(a: Fix, b: Fix, cfg: FilterSettings) -> float:
    dt = abs((b.t - a.t).total_seconds())
    return max(0.0, distance_m(a, b) - cfg.jump_slack_m) / max(dt, 1e-3)


def drop_jump(
    fix: Fix, state: State, ctx: Context, cfg: FilterSettings
) -> tuple[State, str | None]:
    anchor = state.anchor
    # Time going backwards (receiver reset, replay restarted) is a discontinuity,
    # not evidence against the new fix: start over from it.
    if anchor is None or fix.t < anchor.t or _implied_speed(anchor, fix, cfg) <= cfg.max_speed_ms:
        return replace(state, anchor=fix, candidate=None, streak=0), None
    agrees = (
        state.candidate is not None
        and fix.t > state.candidate.t
        and _implied_speed(state.candidate, fix, cfg) <= cfg.max_speed_ms
    )
    streak = state.streak + 1 if agrees else 1
    if streak >= cfg.jump_reanchor:
        return replace(state, anchor=fix, candidate=None, streak=0), None
    return replace(state, candidate=fix, streak=streak), "jump"


def thin(fix: Fix, state: State, ctx: Context, cfg: FilterSettings) -> tuple[State, str | None]:
    kept = state.kept
    speed = fix.speed
    if speed is None and kept is not None and fix.t > kept.t:
        speed = distance_m(kept, fix) / (fix.t - kept.t).total_seconds()
    moving = speed is None or speed >= cfg.stationary_speed_ms
    new = replace(state, moving=moving)
    if kept is None or fix.t <= kept.t or state.moving is None or moving != state.moving:
        return replace(new, kept=fix), None
    elapsed = (fix.t - kept.t).total_seconds()
    if not moving:
        keep = elapsed >= cfg.stationary_interval_s
    else:
        turned = (
            fix.heading is not None
            and kept.heading is not None
            and heading_delta(fix.heading, kept.heading) > cfg.heading_change_deg
        )
        keep = turned or elapsed >= cfg.moving_interval_s
    if keep:
        return replace(new, kept=fix), None
    return new, "stationary" if not moving else "thinned"


STEPS: tuple[Step, ...] = (
    drop_no_fix,
    drop_bad_position,
    drop_bad_time,
    drop_repeat,
    drop_jump,
    thin,
)


def process(
    fix: Fix, state: State, ctx: Context, cfg: FilterSettings, steps: Sequence[Step] = STEPS
) -> Verdict:
    """Run ``fix`` through ``steps``; the first step that drops it wins."""
    for step in steps:
        state, reason = step(fix, state, ctx, cfg)
        if reason is not None:
            return Verdict(state, None, reason)
    return Verdict(state, fix)


class Pipeline:
    """Holds the state between fixes for the capture thread (still no I/O)."""

    def __init__(self, cfg: FilterSettings, steps: Sequence[Step] = STEPS) -> None:
        self.cfg = cfg
        self.steps = steps
        self.state = State()
        self.dropped: dict[str, int] = {}

    def feed(self, fix: Fix, ctx: Context) -> Verdict:
        verdict = process(fix, self.state, ctx, self.cfg, self.steps)
        self.state = verdict.state
        if verdict.reason is not None:
            self.dropped[verdict.reason] = self.dropped.get(verdict.reason, 0) + 1
        return verdict
