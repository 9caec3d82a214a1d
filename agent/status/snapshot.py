"""What the runner knows at one tick, frozen, and the rules that name its states.

The runner builds one ``StatusSnapshot`` per ``status.interval_s`` and hands the
same object to every sink (status file, systemd, and next the LEDs), so they can
never disagree about the state. Besides the one-word ``state`` a snapshot carries
the GPS and the uplink on their own (``gps``, ``uplink``): one LED per subsystem
needs to show a bus with a fix but no network, which ``state`` (first rule wins)
folds into ``buffering``.

The rules are pure functions of what the runner measured, kept here so that the
precedence documented in docs/agent.md ("States") is written down once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Literal

from agent.fix import Fix

State = Literal[
    "config_error", "auth_error", "starting", "no_fix", "buffering", "draining", "ok", "stopped"
]
# fix: a valid fix within status.no_fix_after_s (a parked bus's thinned fixes count);
# searching: the receiver talks but has no fix; no_device: the source can't reach it.
Gps = Literal["fix", "searching", "no_device"]
# connecting: no answer yet since start; backlog: uploads work but more is buffered
# than one request carries; offline: the last attempt failed (network, 5xx, 429).
Uplink = Literal["connecting", "ok", "backlog", "offline", "auth_error", "config_error"]


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    at: datetime  # wall clock (UTC) when taken; may be off until chrony syncs
    state: State
    gps: Gps
    uplink: Uplink
    healthy: bool  # the runner's health check: capture looping, uplink thread alive
    stopping: bool = False  # the runner is shutting down: no more READY or WATCHDOG
    backlog: int = 0
    captured: int = 0
    # Per pipeline reason; a read-only copy, so no sink sees the counts move under it.
    dropped: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    quarantined: int = 0
    last_fix: Fix | None = None
    last_upload: str | None = None  # wall clock ISO of the last 200
    last_error: str | None = None
    batch_size: int = 0
    upload_interval_s: float = 0.0
    next_attempt_in_s: float = 0.0
    requests: int = 0


def gps_state(*, fix_recent: bool, device_present: bool) -> Gps:
    # A recent fix wins over a lost device for no_fix_after_s, exactly as ``state``
    # waits that long before no_fix: a loose connector must not flicker the LED.
    if fix_recent:
        return "fix"
    return "searching" if device_present else "no_device"


def uplink_state(phase: str, backlog: int, batch_size: int) -> Uplink:
    """The uplink thread's phase, plus whether the backlog fits in one request."""
    if phase == "config_error":
        return "config_error"
    if phase == "auth_error":
        return "auth_error"
    if phase == "buffering":
        return "offline"
    if phase == "starting":
        return "connecting"
    return "backlog" if backlog > max(batch_size, 1) else "ok"


def overall_state(gps: Gps, uplink: Uplink, *, starting_up: bool) -> State:
    """The first rule that matches wins (docs/agent.md, "States").

    ``starting_up``: no valid fix yet, and the agent started less than
    ``status.no_fix_after_s`` ago.
    """
    if uplink in ("config_error", "auth_error"):
        return "config_error" if uplink == "config_error" else "auth_error"
    if gps != "fix":
        return "starting" if starting_up else "no_fix"
    if uplink == "offline":
        return "buffering"
    if uplink == "connecting":
        return "starting"
    return "draining" if uplink == "backlog" else "ok"
