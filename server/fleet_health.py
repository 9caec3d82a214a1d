"""How much of the fleet is offline, and when that is worth an alert. No I/O.

The worker computes ``fleet_health`` each pass from what ``/v1/fleet/live``
shows (``server/vehicle.py``'s states) and feeds it to ``OfflineAlarm``,
which answers ``raised`` once when the offline share goes over the
threshold and ``cleared`` once when it is back at or under it: one message
per incident, not one per pass.

The fleet is the vehicles in service that have ever been heard from (a fix
or a heartbeat): a unit registered but not yet installed on a bus is not a
bus gone offline, and a bus an operator took out of service is not missed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from server.model import DeviceSeen, LivePosition
from server.vehicle import VehicleState, vehicle_state

STATES: tuple[VehicleState, ...] = ("online", "no_gps", "offline", "out_of_service")
Transition = Literal["raised", "cleared"]


@dataclass(frozen=True, slots=True)
class FleetHealth:
    counts: dict[VehicleState, int]

    @property
    def in_service(self) -> int:
        return sum(n for state, n in self.counts.items() if state != "out_of_service")

    @property
    def offline(self) -> int:
        return self.counts.get("offline", 0)

    @property
    def offline_share(self) -> float:
        """Offline vehicles over vehicles in service; 0 for an empty fleet."""
        return self.offline / self.in_service if self.in_service else 0.0


def fleet_health(
    live: Iterable[LivePosition],
    heard_only: Iterable[DeviceSeen],
    now: datetime,
    offline_after_s: int,
) -> FleetHealth:
    """Count states; ``heard_only`` may repeat devices of ``live`` (they count once)."""
    counts: Counter[VehicleState] = Counter(dict.fromkeys(STATES, 0))
    with_fix: set[int] = set()
    for pos in live:
        with_fix.add(pos.device_id)
        counts[vehicle_state(pos, now, offline_after_s)] += 1
    for seen in heard_only:
        if seen.device_id not in with_fix:
            counts[vehicle_state(seen, now, offline_after_s)] += 1
    return FleetHealth(dict(counts))


@dataclass(slots=True)
class OfflineAlarm:
    """Raised while more than ``percent`` % of the fleet in service is offline."""

    percent: float
    raised: bool = False

    def update(self, health: FleetHealth) -> Transition | None:
        over = health.offline_share * 100 > self.percent
        if over == self.raised:
            return None
        self.raised = over
        return "raised" if over else "cleared"


def describe(health: FleetHealth, percent: float, transition: Transition) -> tuple[str, str]:
    """Subject and body of the alert message for ``transition``."""
    share = f"{health.offline_share:.0%}"
    if transition == "raised":
        subject = f"bustracker: {health.offline} of {health.in_service} buses offline ({share})"
        lead = f"More than {percent:g}% of the buses in service are offline."
    else:
        subject = f"bustracker: all clear, {health.offline} of {health.in_service} offline"
        lead = f"The offline share is back at or under {percent:g}%."
    counts = ", ".join(f"{state} {n}" for state, n in health.counts.items())
    return subject, f"{lead}\n\nVehicles by state: {counts}.\n"
