"""The SQL of the fleet model (``Fleet`` in base.py), written once for both stores.

Like ``sql.py``: ``?`` placeholders, numbered for PostgreSQL at import. Times
are bound as each store binds them (epoch microseconds on SQLite).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from server.model import AuditMatch
from server.store.base import VEHICLE_FIELDS
from server.store.sql import DEVICE_COLS, numbered

__all__ = ["POSTGRES", "SQLITE", "numbered", "update_vehicle"]

VEHICLE_COLS = "id, label, plate, device_id, route_id, trip_id, block_id, service_date"
SHARE_COLS = "id, vehicle_id, created_by, created_at, expires_at, revoked_at"
AUDIT_COLS = "id, at, actor, action, target_type, target_id, detail"


def update_vehicle(keys: Iterable[str]) -> str:
    """``UPDATE vehicles`` of ``keys`` (each one of VEHICLE_FIELDS); arguments: values, id."""
    names = list(keys)
    unknown = set(names) - set(VEHICLE_FIELDS)
    if unknown or not names:
        raise ValueError(f"not vehicle fields: {sorted(unknown) or 'none given'}")
    sets = ", ".join(f"{name} = ?" for name in names)
    return f"UPDATE vehicles SET {sets} WHERE id = ? RETURNING {VEHICLE_COLS}"


@dataclass(frozen=True, slots=True)
class FleetStatements:
    """Each comment gives the arguments, in order."""

    # enrollment codes: one unused code per device; used and expired ones stay
    drop_unused_codes: str = (  # device_id
        "DELETE FROM enrollment_codes WHERE device_id = ? AND used_at IS NULL"
    )
    add_code: str = (  # code_hash, device_id, created_at, expires_at
        "INSERT INTO enrollment_codes (code_hash, device_id, created_at, expires_at)"
        " VALUES (?, ?, ?, ?)"
    )
    find_code: str = (  # code_hash
        "SELECT device_id, expires_at, used_at FROM enrollment_codes WHERE code_hash = ?"
    )
    use_code: str = "UPDATE enrollment_codes SET used_at = ? WHERE code_hash = ?"  # at, hash
    # devices
    device_exists: str = "SELECT id FROM devices WHERE id = ?"  # id
    set_offline_after: str = (  # seconds, id
        f"UPDATE devices SET offline_after_s = ? WHERE id = ? RETURNING {DEVICE_COLS}"
    )
    # The base moves to the previous report once it is older than the cutoff.
    record_agent: str = (  # cutoff, cutoff, version, backlog, at, id
        "UPDATE devices SET"
        " backlog_base = CASE WHEN base_at IS NULL OR base_at <= ? THEN backlog"
        " ELSE backlog_base END,"
        " base_at = CASE WHEN base_at IS NULL OR base_at <= ? THEN agent_at ELSE base_at END,"
        " agent_version = ?, backlog = ?, agent_at = ? WHERE id = ?"
    )
    note_auth_error: str = (  # at, token_hash, token_hash
        "UPDATE devices SET auth_error_at = ?"
        " WHERE id = (SELECT device_id FROM retired_tokens WHERE token_hash = ?)"
        " OR (token_hash = ? AND active = FALSE) RETURNING id"
    )
    # Devices first, so each device's fixes are one primary-key range (SQLite's
    # CROSS JOIN keeps that order; PostgreSQL prunes the day partitions).
    fixes_between: str = (  # start, end
        "SELECT count(*) AS n FROM devices d CROSS JOIN positions p"
        " WHERE p.device_id = d.id AND p.fix_time >= ? AND p.fix_time < ?"
    )
    # vehicles
    add_vehicle: str = (  # label, plate, created_at
        f"INSERT INTO vehicles (label, plate, created_at) VALUES (?, ?, ?) RETURNING {VEHICLE_COLS}"
    )
    get_vehicle: str = f"SELECT {VEHICLE_COLS} FROM vehicles WHERE id = ?"  # id
    list_vehicles: str = f"SELECT {VEHICLE_COLS} FROM vehicles ORDER BY id"
    delete_vehicle: str = "DELETE FROM vehicles WHERE id = ?"  # id
    uninstall_elsewhere: str = (  # device_id, vehicle id
        "UPDATE vehicles SET device_id = NULL WHERE device_id = ? AND id <> ?"
    )
    # share links
    add_share: str = (  # token_hash, vehicle_id, created_by, created_at, expires_at
        "INSERT INTO shares (token_hash, vehicle_id, created_by, created_at, expires_at)"
        f" VALUES (?, ?, ?, ?, ?) RETURNING {SHARE_COLS}"
    )
    list_shares: str = (  # vehicle_id
        f"SELECT {SHARE_COLS} FROM shares WHERE vehicle_id = ? ORDER BY id DESC"
    )
    share_by_token: str = f"SELECT {SHARE_COLS} FROM shares WHERE token_hash = ?"  # hash
    revoke_share: str = (  # at, id
        "UPDATE shares SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?"
        f" RETURNING {SHARE_COLS}"
    )
    # audit
    add_audit: str = (  # at, actor, action, target_type, target_id, detail
        "INSERT INTO audit_log (at, actor, action, target_type, target_id, detail)"
        " VALUES (?, ?, ?, ?, ?, ?) RETURNING id"
    )
    # A NULL filter matches every row: coalesce(?, col) is the column itself then, and its
    # type tells PostgreSQL the parameter's.
    # before id, actor, action, target_type, target_id, since, until, limit
    audit_entries: str = (
        f"SELECT {AUDIT_COLS} FROM audit_log WHERE id < ? AND actor = coalesce(?, actor)"
        " AND action = coalesce(?, action) AND target_type = coalesce(?, target_type)"
        " AND target_id = coalesce(?, target_id) AND at >= ? AND at < ?"
        " ORDER BY id DESC LIMIT ?"
    )

    def numbered(self) -> FleetStatements:
        return FleetStatements(**{f.name: numbered(getattr(self, f.name)) for f in fields(self)})


SQLITE = FleetStatements()
POSTGRES = SQLITE.numbered()


# Past every id: the newest entries, when no ``before`` is given.
_NO_ID = 2**63 - 1
# Before and after every entry, when no time bound is given; both stores hold these.
_EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
_LATEST = datetime.max.replace(tzinfo=UTC)


def _same(t: datetime) -> Any:
    return t


def audit_params(
    limit: int,
    before: int | None,
    match: AuditMatch | None,
    bind_time: Callable[[datetime], Any] = _same,
) -> tuple[Any, ...]:
    """``audit_entries``' parameters, in its order, for either store; ``bind_time``
    turns a time into what the store compares (epoch microseconds on SQLite)."""
    m = match or AuditMatch()
    since, until = bind_time(m.since or _EARLIEST), bind_time(m.until or _LATEST)
    return (before or _NO_ID, m.actor, m.action, m.target_type, m.target_id, since, until, limit)
