"""Rows as records, for both stores: one mapper per record, shared.

The stores' rows (asyncpg Records, sqlite3 Rows) are read by column name and
differ only in how a time comes back: an aware datetime from asyncpg, epoch
microseconds from SQLite. So each store builds one ``Rows`` with its time
conversion. Booleans are read with ``bool``/``as_bool``, which take
PostgreSQL's booleans and SQLite's 0/1 alike.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from server.model import (
    AuditEntry,
    Device,
    DeviceSeen,
    DeviceView,
    Event,
    FixIn,
    FleetInfo,
    LivePosition,
    Seen,
    Share,
    User,
    VehicleRecord,
)


def as_bool(value: int | bool | None) -> bool | None:
    return None if value is None else bool(value)


class Rows:
    """The mappers of one store; ``time`` turns a stored time into an aware UTC datetime."""

    def __init__(self, time: Callable[[Any], datetime]) -> None:
        self.time = time

    def fix(self, row: Any) -> FixIn:
        return FixIn(
            t=self.time(row["fix_time"]), lat=row["lat"], lon=row["lon"], alt=row["alt"],
            speed=row["speed"], heading=row["heading"], hdop=row["hdop"],
            sats=row["sats"], mode=row["mode"], accuracy=row["accuracy"],
            battery=row["battery"], charge=as_bool(row["charge"]),
        )  # fmt: skip

    def seen(self, row: Any) -> Seen | None:
        # The PostGIS insert statements' RETURNING rows carry no heartbeat columns.
        if "seen_at" not in row.keys() or row["seen_at"] is None:  # noqa: SIM118 (a Record)
            return None
        return Seen(self.time(row["seen_at"]), row["seen_battery"], as_bool(row["seen_charge"]))

    def live(self, row: Any) -> LivePosition:
        return LivePosition(
            device_id=row["device_id"], name=row["name"], fix=self.fix(row),
            received_at=self.time(row["received_at"]), route=row["route"],
            in_service=bool(row["in_service"]), seen=self.seen(row), fleet=self.fleet(row),
        )  # fmt: skip

    def device_view(self, row: Any) -> DeviceView:
        return DeviceView(
            device_id=row["device_id"], name=row["name"], route=row["route"],
            in_service=bool(row["in_service"]), fleet=self.fleet(row),
        )  # fmt: skip

    def maybe(self, value: Any) -> datetime | None:
        return None if value is None else self.time(value)

    def fleet(self, row: Any) -> FleetInfo:
        """The FLEET_COLS of a row (server/store/sql.py)."""
        return FleetInfo(
            vehicle_id=row["vehicle_id"], vehicle=row["vehicle_label"], route_id=row["route_id"],
            trip_id=row["trip_id"], offline_after_s=row["offline_after_s"],
            agent_version=row["agent_version"], backlog=row["backlog"],
            auth_error_at=self.maybe(row["auth_error_at"]),
        )  # fmt: skip

    def device_seen(self, row: Any) -> DeviceSeen:
        # Selected from device_seen, where seen_at is NOT NULL.
        seen = Seen(self.time(row["seen_at"]), row["seen_battery"], as_bool(row["seen_charge"]))
        return DeviceSeen(
            device_id=row["device_id"], name=row["name"], seen=seen, route=row["route"],
            in_service=bool(row["in_service"]), fleet=self.fleet(row),
        )  # fmt: skip

    def event(self, row: Any) -> Event:
        return Event(
            id=row["id"], device_id=row["device_id"], kind=row["kind"],
            t=self.time(row["event_time"]), received_at=self.time(row["received_at"]),
            lat=row["lat"], lon=row["lon"],
        )  # fmt: skip

    def device(self, row: Any) -> Device:
        return Device(
            id=row["id"], name=row["name"], active=bool(row["active"]),
            in_service=bool(row["in_service"]), route=row["route"],
            offline_after_s=row["offline_after_s"], agent_version=row["agent_version"],
            backlog=row["backlog"], agent_at=self.maybe(row["agent_at"]),
            backlog_base=row["backlog_base"], auth_error_at=self.maybe(row["auth_error_at"]),
        )  # fmt: skip

    @staticmethod
    def vehicle(row: Any) -> VehicleRecord:
        return VehicleRecord(
            id=row["id"], label=row["label"], plate=row["plate"], device_id=row["device_id"],
            route_id=row["route_id"], trip_id=row["trip_id"], block_id=row["block_id"],
            service_date=row["service_date"],
        )  # fmt: skip

    def share(self, row: Any) -> Share:
        return Share(
            id=row["id"], vehicle_id=row["vehicle_id"], created_by=row["created_by"],
            created_at=self.time(row["created_at"]), expires_at=self.time(row["expires_at"]),
            revoked_at=self.maybe(row["revoked_at"]),
        )  # fmt: skip

    def audit(self, row: Any) -> AuditEntry:
        return AuditEntry(
            id=row["id"], at=self.time(row["at"]), actor=row["actor"], action=row["action"],
            target_type=row["target_type"], target_id=row["target_id"],
            detail=json.loads(row["detail"]),
        )  # fmt: skip

    @staticmethod
    def user(row: Any) -> User:
        return User(
            id=row["id"], username=row["username"], password_hash=row["password_hash"],
            role=row["role"],
        )  # fmt: skip
