"""Rows as records, for both stores: one mapper per record, shared.

The stores' rows (asyncpg Records, sqlite3 Rows) are read by column name and
differ only in how a time comes back: an aware datetime from asyncpg, epoch
microseconds from SQLite. So each store builds one ``Rows`` with its time
conversion. Booleans are read with ``bool``/``as_bool``, which take
PostgreSQL's booleans and SQLite's 0/1 alike.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from server.model import Device, DeviceSeen, Event, FixIn, LivePosition, Seen, User


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
            in_service=bool(row["in_service"]), seen=self.seen(row),
        )  # fmt: skip

    def device_seen(self, row: Any) -> DeviceSeen:
        # Selected from device_seen, where seen_at is NOT NULL.
        seen = Seen(self.time(row["seen_at"]), row["seen_battery"], as_bool(row["seen_charge"]))
        return DeviceSeen(
            device_id=row["device_id"], name=row["name"], seen=seen, route=row["route"],
            in_service=bool(row["in_service"]),
        )  # fmt: skip

    def event(self, row: Any) -> Event:
        return Event(
            id=row["id"], device_id=row["device_id"], kind=row["kind"],
            t=self.time(row["event_time"]), received_at=self.time(row["received_at"]),
            lat=row["lat"], lon=row["lon"],
        )  # fmt: skip

    @staticmethod
    def device(row: Any) -> Device:
        return Device(
            id=row["id"], name=row["name"], active=bool(row["active"]),
            in_service=bool(row["in_service"]), route=row["route"],
        )  # fmt: skip

    @staticmethod
    def user(row: Any) -> User:
        return User(
            id=row["id"], username=row["username"], password_hash=row["password_hash"],
            role=row["role"],
        )  # fmt: skip
