"""The wallboard's figures (``GET /v1/fleet/summary``), computed from what the store holds. No I/O.

- The fleet is every device with a token (revoked ones are not counted), in
  one state each; a device never heard from is ``offline``.
- ``offline_share``: offline devices among those in service; the seed's alert
  fires above ``OFFLINE_ALERT_SHARE`` (10 %).
- A growing backlog: the agent's latest backlog is larger than the one it
  reported about a minute before (``backlog_base``, server/agent_reports.py).
- An auth error: the device's last call was refused because its token was
  revoked or replaced (later than anything accepted from it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from server.model import Device
from server.vehicle import VehicleState, iso

OFFLINE_ALERT_SHARE = 0.10
STATES: tuple[VehicleState, ...] = ("online", "no_gps", "offline", "out_of_service")


def growing(device: Device) -> bool:
    return (
        device.backlog is not None
        and device.backlog_base is not None
        and device.backlog > device.backlog_base
    )


def auth_failing(device: Device, heard: datetime | None) -> bool:
    error = device.auth_error_at
    return error is not None and (heard is None or error > heard)


def summarize(
    devices: Iterable[Device],
    states: Mapping[int, VehicleState],
    heard: Mapping[int, datetime],
    fixes_last_minute: int,
) -> dict[str, Any]:
    """``states``: each device's state where it was heard from; ``heard``: when last."""
    counts: dict[str, int] = dict.fromkeys(STATES, 0)
    backlogs: list[dict[str, Any]] = []
    auth_errors: list[dict[str, Any]] = []
    fleet = 0
    for device in devices:
        if auth_failing(device, heard.get(device.id)):
            assert device.auth_error_at is not None
            auth_errors.append(
                {"device_id": device.id, "name": device.name, "at": iso(device.auth_error_at)}
            )
        if not device.active:
            continue
        fleet += 1
        state = states.get(device.id) or ("offline" if device.in_service else "out_of_service")
        counts[state] += 1
        if growing(device):
            backlogs.append(
                {"device_id": device.id, "name": device.name, "backlog": device.backlog,
                 "previous": device.backlog_base}
            )  # fmt: skip
    in_service = fleet - counts["out_of_service"]
    share = counts["offline"] / in_service if in_service else 0.0
    backlogs.sort(key=lambda b: (b["previous"] - b["backlog"], b["device_id"]))
    return {
        "vehicles": fleet,
        **counts,
        "fixes_per_minute": fixes_last_minute,
        "growing_backlogs": backlogs,
        "auth_errors": auth_errors,
        "offline_alert": share > OFFLINE_ALERT_SHARE,
        "offline_share": round(share, 4),
    }
