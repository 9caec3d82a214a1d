"""``Fleet`` (server/store/base.py) on SQLite: a mixin of ``SqliteStore``."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from server.enrollment import refusal
from server.model import (
    AgentReport,
    AuditEntry,
    AuditMatch,
    Device,
    DeviceView,
    Share,
    VehicleRecord,
)
from server.store import fleet_sql
from server.store import sqlite_schema as schema
from server.store.base import Conflict, EnrollmentRefused
from server.store.fleet_sql import SQLITE as FLEET
from server.store.rows import Rows
from server.store.sql import SQLITE as SQL

T = TypeVar("T")
_ROWS = Rows(schema.from_us)


def _us(t: datetime | None) -> int | None:
    return None if t is None else schema.to_us(t)


def _unique_violation(exc: sqlite3.IntegrityError) -> bool:
    return exc.sqlite_errorcode == sqlite3.SQLITE_CONSTRAINT_UNIQUE


def _fk_violation(exc: sqlite3.IntegrityError) -> bool:
    return exc.sqlite_errorcode == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY


def set_token(conn: sqlite3.Connection, device_id: int, token_hash: str, now: datetime) -> bool:
    """Retire the device's token and give it ``token_hash``, inside the caller's transaction."""
    conn.execute(SQL.retire_token, (schema.to_us(now), device_id))
    try:
        return conn.execute(SQL.set_device_token, (token_hash, device_id)).rowcount == 1
    except sqlite3.IntegrityError as exc:
        if _unique_violation(exc):
            raise Conflict("token already in use") from exc
        raise


class SqliteFleet:
    if TYPE_CHECKING:

        async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...
        async def _row(self, sql: str, *args: object) -> sqlite3.Row | None: ...
        async def _rows(self, sql: str, *args: object) -> list[sqlite3.Row]: ...

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def work(conn: sqlite3.Connection) -> T:
            with schema.transaction(conn):
                return fn(conn)

        return await self._run(work)

    # devices -------------------------------------------------------------------------
    async def issue_enrollment_code(
        self, device_id: int, code_hash: str, now: datetime, expires_at: datetime
    ) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            if conn.execute(FLEET.device_exists, (device_id,)).fetchone() is None:
                return False
            conn.execute(FLEET.drop_unused_codes, (device_id,))
            args = (code_hash, device_id, schema.to_us(now), schema.to_us(expires_at))
            conn.execute(FLEET.add_code, args)
            return True

        try:
            return await self._write(work)
        except sqlite3.IntegrityError as exc:
            if _unique_violation(exc):
                raise Conflict("enrollment code already issued") from exc
            raise

    async def redeem_enrollment_code(
        self, code_hash: str, token_hash: str, now: datetime
    ) -> Device:
        def work(conn: sqlite3.Connection) -> Device:
            row = conn.execute(FLEET.find_code, (code_hash,)).fetchone()
            if row is None:
                raise EnrollmentRefused("unknown_code")
            why = refusal(schema.from_us(row["expires_at"]), _ROWS.maybe(row["used_at"]), now)
            if why is not None:
                raise EnrollmentRefused(why)
            conn.execute(FLEET.use_code, (schema.to_us(now), code_hash))
            set_token(conn, row["device_id"], token_hash, now)
            device = conn.execute(SQL.get_device, (row["device_id"],)).fetchone()
            return _ROWS.device(device)

        return await self._write(work)

    async def device_view(self, device_id: int) -> DeviceView | None:
        row = await self._row(SQL.device_view, device_id)
        return None if row is None else _ROWS.device_view(row)

    async def set_offline_after(self, device_id: int, seconds: int | None) -> Device | None:
        row = await self._write(
            lambda c: c.execute(FLEET.set_offline_after, (seconds, device_id)).fetchone()
        )
        return None if row is None else _ROWS.device(row)

    async def record_agent(
        self, device_id: int, report: AgentReport, at: datetime, base_before: datetime
    ) -> None:
        cutoff = schema.to_us(base_before)
        args = (cutoff, cutoff, report.version, report.backlog, schema.to_us(at), device_id)
        await self._write(lambda c: c.execute(FLEET.record_agent, args))

    async def note_auth_error(self, token_hash: str, at: datetime) -> int | None:
        args = (schema.to_us(at), token_hash, token_hash)
        row = await self._write(lambda c: c.execute(FLEET.note_auth_error, args).fetchone())
        return None if row is None else int(row["id"])

    async def fixes_between(self, start: datetime, end: datetime) -> int:
        row = await self._row(FLEET.fixes_between, schema.to_us(start), schema.to_us(end))
        return 0 if row is None else int(row["n"])

    # vehicles ------------------------------------------------------------------------
    async def add_vehicle(self, label: str, plate: str | None) -> VehicleRecord:
        args = (label, plate, schema.to_us(datetime.now(UTC)))
        try:
            row = await self._write(lambda c: c.execute(FLEET.add_vehicle, args).fetchone())
        except sqlite3.IntegrityError as exc:
            if _unique_violation(exc):
                raise Conflict(f"a vehicle labelled {label!r} exists already") from exc
            raise
        return _ROWS.vehicle(row)

    async def get_vehicle(self, vehicle_id: int) -> VehicleRecord | None:
        row = await self._row(FLEET.get_vehicle, vehicle_id)
        return None if row is None else _ROWS.vehicle(row)

    async def list_vehicles(self) -> list[VehicleRecord]:
        return [_ROWS.vehicle(r) for r in await self._rows(FLEET.list_vehicles)]

    async def update_vehicle(
        self, vehicle_id: int, changes: dict[str, Any]
    ) -> VehicleRecord | None:
        sql = fleet_sql.update_vehicle(changes)

        def work(conn: sqlite3.Connection) -> sqlite3.Row | None:
            device_id = changes.get("device_id")
            if device_id is not None:
                conn.execute(FLEET.uninstall_elsewhere, (device_id, vehicle_id))
            row: sqlite3.Row | None = conn.execute(sql, (*changes.values(), vehicle_id)).fetchone()
            return row

        try:
            row = await self._write(work)
        except sqlite3.IntegrityError as exc:
            if _unique_violation(exc):
                raise Conflict(f"a vehicle labelled {changes.get('label')!r} exists") from exc
            if _fk_violation(exc):
                raise LookupError(f"no device {changes.get('device_id')}") from exc
            raise
        return None if row is None else _ROWS.vehicle(row)

    async def delete_vehicle(self, vehicle_id: int) -> bool:
        return await self._write(
            lambda c: c.execute(FLEET.delete_vehicle, (vehicle_id,)).rowcount == 1
        )

    # share links ---------------------------------------------------------------------
    async def add_share(
        self, vehicle_id: int, token_hash: str, created_by: str, now: datetime, expires_at: datetime
    ) -> Share:
        args = (token_hash, vehicle_id, created_by, schema.to_us(now), schema.to_us(expires_at))
        try:
            row = await self._write(lambda c: c.execute(FLEET.add_share, args).fetchone())
        except sqlite3.IntegrityError as exc:
            if _fk_violation(exc):
                raise LookupError(f"no vehicle {vehicle_id}") from exc
            raise
        return _ROWS.share(row)

    async def list_shares(self, vehicle_id: int) -> list[Share]:
        return [_ROWS.share(r) for r in await self._rows(FLEET.list_shares, vehicle_id)]

    async def share_by_token_hash(self, token_hash: str) -> Share | None:
        row = await self._row(FLEET.share_by_token, token_hash)
        return None if row is None else _ROWS.share(row)

    async def revoke_share(self, share_id: int, now: datetime) -> Share | None:
        args = (schema.to_us(now), share_id)
        row = await self._write(lambda c: c.execute(FLEET.revoke_share, args).fetchone())
        return None if row is None else _ROWS.share(row)

    # audit ---------------------------------------------------------------------------
    async def add_audit(self, entry: AuditEntry) -> AuditEntry:
        args = (
            schema.to_us(entry.at), entry.actor, entry.action, entry.target_type,
            entry.target_id, json.dumps(entry.detail),
        )  # fmt: skip
        row = await self._write(lambda c: c.execute(FLEET.add_audit, args).fetchone())
        return replace(entry, id=int(row["id"]))

    async def audit_entries(
        self, limit: int, before: int | None = None, match: AuditMatch | None = None
    ) -> list[AuditEntry]:
        params = fleet_sql.audit_params(limit, before, match, schema.to_us)
        rows = await self._rows(FLEET.audit_entries, *params)
        return [_ROWS.audit(r) for r in rows]
