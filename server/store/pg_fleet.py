"""``Fleet`` (server/store/base.py) on PostGIS: a mixin of ``PostgisStore``."""

from __future__ import annotations

import json
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg  # type: ignore[import-untyped]

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
from server.store.base import Conflict, EnrollmentRefused
from server.store.fleet_sql import POSTGRES as FLEET
from server.store.rows import Rows
from server.store.sql import POSTGRES as SQL

_ROWS = Rows(lambda value: value)


async def set_token(conn: Any, device_id: int, token_hash: str, now: datetime) -> bool:
    """Retire the device's token and give it ``token_hash``, inside the caller's transaction."""
    await conn.execute(SQL.retire_token, now, device_id)
    try:
        return bool(await conn.execute(SQL.set_device_token, token_hash, device_id) == "UPDATE 1")
    except asyncpg.exceptions.UniqueViolationError as exc:
        raise Conflict("token already in use") from exc


class PostgisFleet:
    if TYPE_CHECKING:

        def _conn(self) -> AbstractAsyncContextManager[Any]: ...
        async def _fetchrow(self, sql: str, *args: object) -> Any: ...
        async def _fetch(self, sql: str, *args: object) -> list[Any]: ...

    # devices -------------------------------------------------------------------------
    async def issue_enrollment_code(
        self, device_id: int, code_hash: str, now: datetime, expires_at: datetime
    ) -> bool:
        async with self._conn() as conn, conn.transaction():
            if await conn.fetchrow(FLEET.device_exists, device_id) is None:
                return False
            await conn.execute(FLEET.drop_unused_codes, device_id)
            try:
                await conn.execute(FLEET.add_code, code_hash, device_id, now, expires_at)
            except asyncpg.exceptions.UniqueViolationError as exc:
                raise Conflict("enrollment code already issued") from exc
            return True

    async def redeem_enrollment_code(
        self, code_hash: str, token_hash: str, now: datetime
    ) -> Device:
        async with self._conn() as conn, conn.transaction():
            # FOR UPDATE: two installers typing the same code at once get one token.
            row = await conn.fetchrow(FLEET.find_code + " FOR UPDATE", code_hash)
            if row is None:
                raise EnrollmentRefused("unknown_code")
            why = refusal(row["expires_at"], row["used_at"], now)
            if why is not None:
                raise EnrollmentRefused(why)
            await conn.execute(FLEET.use_code, now, code_hash)
            await set_token(conn, row["device_id"], token_hash, now)
            return _ROWS.device(await conn.fetchrow(SQL.get_device, row["device_id"]))

    async def device_view(self, device_id: int) -> DeviceView | None:
        row = await self._fetchrow(SQL.device_view, device_id)
        return None if row is None else _ROWS.device_view(row)

    async def set_offline_after(self, device_id: int, seconds: int | None) -> Device | None:
        row = await self._fetchrow(FLEET.set_offline_after, seconds, device_id)
        return None if row is None else _ROWS.device(row)

    async def record_agent(
        self, device_id: int, report: AgentReport, at: datetime, base_before: datetime
    ) -> None:
        await self._fetch(
            FLEET.record_agent,
            *(base_before, base_before, report.version, report.backlog, at, device_id),
        )

    async def note_auth_error(self, token_hash: str, at: datetime) -> int | None:
        row = await self._fetchrow(FLEET.note_auth_error, at, token_hash, token_hash)
        return None if row is None else int(row["id"])

    async def fixes_between(self, start: datetime, end: datetime) -> int:
        row = await self._fetchrow(FLEET.fixes_between, start, end)
        return 0 if row is None else int(row["n"])

    # vehicles ------------------------------------------------------------------------
    async def add_vehicle(self, label: str, plate: str | None) -> VehicleRecord:
        try:
            row = await self._fetchrow(FLEET.add_vehicle, label, plate, datetime.now(UTC))
        except asyncpg.exceptions.UniqueViolationError as exc:
            raise Conflict(f"a vehicle labelled {label!r} exists already") from exc
        return _ROWS.vehicle(row)

    async def get_vehicle(self, vehicle_id: int) -> VehicleRecord | None:
        row = await self._fetchrow(FLEET.get_vehicle, vehicle_id)
        return None if row is None else _ROWS.vehicle(row)

    async def list_vehicles(self) -> list[VehicleRecord]:
        return [_ROWS.vehicle(r) for r in await self._fetch(FLEET.list_vehicles)]

    async def update_vehicle(
        self, vehicle_id: int, changes: dict[str, Any]
    ) -> VehicleRecord | None:
        sql = fleet_sql.numbered(fleet_sql.update_vehicle(changes))
        try:
            async with self._conn() as conn, conn.transaction():
                device_id = changes.get("device_id")
                if device_id is not None:
                    await conn.execute(FLEET.uninstall_elsewhere, device_id, vehicle_id)
                row = await conn.fetchrow(sql, *changes.values(), vehicle_id)
        except asyncpg.exceptions.UniqueViolationError as exc:
            raise Conflict(f"a vehicle labelled {changes.get('label')!r} exists") from exc
        except asyncpg.exceptions.ForeignKeyViolationError as exc:
            raise LookupError(f"no device {changes.get('device_id')}") from exc
        return None if row is None else _ROWS.vehicle(row)

    async def delete_vehicle(self, vehicle_id: int) -> bool:
        async with self._conn() as conn:
            return bool(await conn.execute(FLEET.delete_vehicle, vehicle_id) == "DELETE 1")

    # share links ---------------------------------------------------------------------
    async def add_share(
        self, vehicle_id: int, token_hash: str, created_by: str, now: datetime, expires_at: datetime
    ) -> Share:
        try:
            row = await self._fetchrow(
                FLEET.add_share, token_hash, vehicle_id, created_by, now, expires_at
            )
        except asyncpg.exceptions.ForeignKeyViolationError as exc:
            raise LookupError(f"no vehicle {vehicle_id}") from exc
        return _ROWS.share(row)

    async def list_shares(self, vehicle_id: int) -> list[Share]:
        return [_ROWS.share(r) for r in await self._fetch(FLEET.list_shares, vehicle_id)]

    async def share_by_token_hash(self, token_hash: str) -> Share | None:
        row = await self._fetchrow(FLEET.share_by_token, token_hash)
        return None if row is None else _ROWS.share(row)

    async def revoke_share(self, share_id: int, now: datetime) -> Share | None:
        row = await self._fetchrow(FLEET.revoke_share, now, share_id)
        return None if row is None else _ROWS.share(row)

    # audit ---------------------------------------------------------------------------
    async def add_audit(self, entry: AuditEntry) -> AuditEntry:
        row = await self._fetchrow(
            FLEET.add_audit,
            *(entry.at, entry.actor, entry.action, entry.target_type, entry.target_id),
            json.dumps(entry.detail),
        )
        return replace(entry, id=int(row["id"]))

    async def audit_entries(
        self, limit: int, before: int | None = None, match: AuditMatch | None = None
    ) -> list[AuditEntry]:
        rows = await self._fetch(FLEET.audit_entries, *fleet_sql.audit_params(limit, before, match))
        return [_ROWS.audit(r) for r in rows]
