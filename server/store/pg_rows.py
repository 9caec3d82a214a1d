"""How the PostGIS store's rows read: the SELECTs it shares and rows as records."""

from __future__ import annotations

from typing import Any

from server.model import Device, DeviceSeen, Event, FixIn, LivePosition, Seen, User
from server.store import pg_insert

FIX_COLS = pg_insert.FIX_COLS
DEVICE_COLS = "id, name, active, in_service, route"
USER_COLS = "id, username, password_hash, role"
LIVE_SELECT = f"""
SELECT lp.device_id, d.name, d.route, d.in_service, lp.received_at,
       {", ".join("lp." + c for c in FIX_COLS.split(", "))},
       s.seen_at, s.battery AS seen_battery, s.charge AS seen_charge
FROM last_positions lp JOIN devices d ON d.id = lp.device_id
LEFT JOIN device_seen s ON s.device_id = lp.device_id
"""
SEEN_SELECT = """
SELECT s.device_id, d.name, d.route, d.in_service, s.seen_at,
       s.battery AS seen_battery, s.charge AS seen_charge
FROM device_seen s JOIN devices d ON d.id = s.device_id
"""
MARK_SEEN = """
INSERT INTO device_seen (device_id, seen_at, battery, charge) VALUES ($1, $2, $3, $4)
ON CONFLICT (device_id) DO UPDATE SET seen_at = excluded.seen_at,
    battery = excluded.battery, charge = excluded.charge
WHERE excluded.seen_at > device_seen.seen_at
"""
EVENT_COLS = "id, device_id, event_time, kind, received_at, lat, lon"


def fix(row: Any) -> FixIn:
    return FixIn(
        t=row["fix_time"], lat=row["lat"], lon=row["lon"], alt=row["alt"],
        speed=row["speed"], heading=row["heading"], hdop=row["hdop"],
        sats=row["sats"], mode=row["mode"], accuracy=row["accuracy"],
        battery=row["battery"], charge=row["charge"],
    )  # fmt: skip


def seen(row: Any) -> Seen | None:
    # The insert statements' RETURNING rows carry no heartbeat columns.
    if "seen_at" not in row.keys() or row["seen_at"] is None:  # noqa: SIM118 (a Record)
        return None
    return Seen(row["seen_at"], row["seen_battery"], row["seen_charge"])


def live(row: Any) -> LivePosition:
    return LivePosition(
        device_id=row["device_id"], name=row["name"], fix=fix(row),
        received_at=row["received_at"], route=row["route"], in_service=row["in_service"],
        seen=seen(row),
    )  # fmt: skip


def device_seen(row: Any) -> DeviceSeen:
    return DeviceSeen(
        device_id=row["device_id"], name=row["name"],
        seen=Seen(row["seen_at"], row["seen_battery"], row["seen_charge"]),
        route=row["route"], in_service=row["in_service"],
    )  # fmt: skip


def event(row: Any) -> Event:
    return Event(
        id=row["id"], device_id=row["device_id"], kind=row["kind"], t=row["event_time"],
        received_at=row["received_at"], lat=row["lat"], lon=row["lon"],
    )  # fmt: skip


# The selected columns are named exactly like the dataclass fields.
def device(row: Any) -> Device:
    return Device(**dict(row))


def user(row: Any) -> User:
    return User(**dict(row))
