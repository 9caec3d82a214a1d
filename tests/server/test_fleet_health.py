"""The fleet's offline share and the alarm over it (pure: no store, no clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from server.fleet_health import FleetHealth, OfflineAlarm, describe, fleet_health
from server.model import DeviceSeen, FixIn, LivePosition, Seen

NOW = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)


def live(device_id: int, age_s: float, *, in_service: bool = True) -> LivePosition:
    at = NOW - timedelta(seconds=age_s)
    return LivePosition(
        device_id, f"bus-{device_id}", FixIn(at, 45.0, 9.0), at, in_service=in_service
    )


def test_states_are_counted_once_per_device() -> None:
    # Device 3 has a fix an hour old and a fresh heartbeat (no_gps); device 4 only heartbeats.
    hour_ago = NOW - timedelta(hours=1)
    heartbeat = LivePosition(
        3, "bus-3", FixIn(hour_ago, 45, 9), hour_ago, seen=Seen(NOW - timedelta(seconds=5))
    )
    health = fleet_health(
        [live(1, 10), live(2, 600), heartbeat, live(5, 9999, in_service=False)],
        [DeviceSeen(3, "bus-3", Seen(NOW)), DeviceSeen(4, "bus-4", Seen(NOW - timedelta(hours=2)))],
        NOW,
        offline_after_s=120,
    )
    assert health.counts == {"online": 1, "no_gps": 1, "offline": 2, "out_of_service": 1}
    assert (health.offline, health.in_service) == (2, 4)
    assert health.offline_share == 0.5


def test_the_alarm_fires_over_the_threshold_once_and_clears_once() -> None:
    alarm = OfflineAlarm(10.0)

    def share(offline: int, total: int) -> FleetHealth:
        return FleetHealth({"online": total - offline, "offline": offline})

    assert alarm.update(share(1, 10)) is None  # exactly 10% is not more than 10%
    assert alarm.update(share(2, 10)) == "raised"
    assert alarm.update(share(5, 10)) is None
    assert alarm.update(share(1, 10)) == "cleared"
    assert alarm.update(share(0, 10)) is None
    assert alarm.update(FleetHealth({})) is None  # an empty fleet is not an outage
    subject, body = describe(share(2, 10), 10.0, "raised")
    assert subject == "bustracker: 2 of 10 buses offline (20%)"
    assert "online 8, offline 2" in body
