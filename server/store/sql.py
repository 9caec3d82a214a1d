"""The SQL both stores run, written once: column lists and the statements they share.

Statements are written with SQLite's ``?`` placeholders; ``numbered`` turns
them into PostgreSQL's ``$1, $2, ...`` once, at import (``POSTGRES``), so both
stores bind the same arguments in the same order. The stores only convert
values (SQLite keeps times as epoch microseconds); the SQL text is the same.

What differs in more than placeholders stays with its store: the batch
inserts (the ingest hot path, tuned per database: ``pg_insert.py``,
``sqlite.py``), partitions and retention, ``nearby`` (PostGIS geography, a
scan in Python on SQLite), and adding devices and users (PostgreSQL fills
``created_at`` itself). This is not an ORM: a new query is one more field.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

FIX_COLS = "fix_time, lat, lon, alt, speed, heading, hdop, sats, mode, accuracy, battery, charge"
POSITION_COLS = f"device_id, received_at, {FIX_COLS}"  # positions and last_positions
DEVICE_COLS = (
    "id, name, active, in_service, route, offline_after_s, agent_version, backlog, agent_at,"
    " backlog_base, auth_error_at"
)
USER_COLS = "id, username, password_hash, role"
EVENT_COLS = "id, device_id, event_time, kind, received_at, lat, lon"

# What readers show of a device (``d``) besides its position, with the vehicle (``v``)
# it is installed in (FLEET_JOIN): the vehicle's route, when it has one, is the
# device's route (docs/decisions.md D41).
FLEET_COLS = (
    "d.name, coalesce(v.route_id, d.route) AS route, d.in_service, d.offline_after_s,"
    " d.agent_version, d.backlog, d.auth_error_at, v.id AS vehicle_id,"
    " v.label AS vehicle_label, v.route_id, v.trip_id"
)
FLEET_JOIN = "LEFT JOIN vehicles v ON v.device_id = d.id"

# Every device's live position with its last heartbeat; callers add WHERE / ORDER BY.
LIVE_SELECT = f"""
SELECT lp.device_id, {FLEET_COLS}, lp.received_at,
       {", ".join("lp." + c for c in FIX_COLS.split(", "))},
       s.seen_at, s.battery AS seen_battery, s.charge AS seen_charge
FROM last_positions lp JOIN devices d ON d.id = lp.device_id {FLEET_JOIN}
LEFT JOIN device_seen s ON s.device_id = lp.device_id
"""
SEEN_SELECT = f"""
SELECT s.device_id, {FLEET_COLS}, s.seen_at,
       s.battery AS seen_battery, s.charge AS seen_charge
FROM device_seen s JOIN devices d ON d.id = s.device_id {FLEET_JOIN}
"""
# One device as the live views show it, position aside.
DEVICE_VIEW = f"SELECT d.id AS device_id, {FLEET_COLS} FROM devices d {FLEET_JOIN} WHERE d.id = ?"


def numbered(sql: str) -> str:
    """``?`` placeholders as ``$1, $2, ...`` in order (the shared SQL has no ``?`` otherwise)."""
    if "$" in sql:
        raise ValueError(f"already numbered: {sql[:60]!r}")
    first, *rest = sql.split("?")
    return first + "".join(f"${n}{part}" for n, part in enumerate(rest, start=1))


@dataclass(frozen=True, slots=True)
class Statements:
    """The shared statements; each comment gives the arguments, in order."""

    # devices
    device_by_token: str = (  # token_hash
        f"SELECT {DEVICE_COLS} FROM devices WHERE token_hash = ? AND active"
    )
    get_device: str = f"SELECT {DEVICE_COLS} FROM devices WHERE id = ?"  # id
    list_devices: str = f"SELECT {DEVICE_COLS} FROM devices ORDER BY id"
    # A new token is a fresh credential, so it also re-activates a revoked device.
    set_device_token: str = (  # token_hash, id
        "UPDATE devices SET token_hash = ?, active = TRUE WHERE id = ?"
    )
    # The token a rotation replaces: calls with it are this device's auth errors.
    retire_token: str = (  # retired_at, id
        "INSERT INTO retired_tokens (token_hash, device_id, retired_at)"
        " SELECT token_hash, id, ? FROM devices WHERE id = ? ON CONFLICT DO NOTHING"
    )
    device_view: str = DEVICE_VIEW  # id
    revoke_device: str = "UPDATE devices SET active = FALSE WHERE id = ?"  # id
    update_device: str = (  # in_service, route (None keeps either), id
        "UPDATE devices SET in_service = coalesce(?, in_service), route = coalesce(?, route)"
        f" WHERE id = ? RETURNING {DEVICE_COLS}"
    )
    # users
    user_by_name: str = f"SELECT {USER_COLS} FROM users WHERE username = ?"  # username
    get_user: str = f"SELECT {USER_COLS} FROM users WHERE id = ?"  # id
    list_users: str = f"SELECT {USER_COLS} FROM users ORDER BY id"
    admin_ids: str = "SELECT id FROM users WHERE role = 'admin'"  # PostGIS adds FOR UPDATE
    update_user: str = (  # role, password_hash (None keeps either), id
        "UPDATE users SET role = coalesce(?, role), password_hash = coalesce(?, password_hash)"
        f" WHERE id = ? RETURNING {USER_COLS}"
    )
    delete_user: str = "DELETE FROM users WHERE id = ?"  # id
    # sign-ins (refresh token families)
    expire_sessions: str = "DELETE FROM sessions WHERE expires_at <= ?"  # now
    start_session: str = (  # family, user_id, current_jti, expires_at
        "INSERT INTO sessions (family, user_id, current_jti, expires_at) VALUES (?, ?, ?, ?)"
    )
    rotate_session: str = (  # new jti, expires_at, family, presented jti, now
        "UPDATE sessions SET current_jti = ?, expires_at = ?"
        " WHERE family = ? AND current_jti = ? AND expires_at > ? RETURNING user_id"
    )
    end_session: str = "DELETE FROM sessions WHERE family = ?"  # family
    # The signed-in user behind a family, as of now (role changes apply at once).
    session_user: str = (  # family, now
        "SELECT u.id, u.username, u.password_hash, u.role FROM sessions s"
        " JOIN users u ON u.id = s.user_id WHERE s.family = ? AND s.expires_at > ?"
    )
    end_user_sessions: str = "DELETE FROM sessions WHERE user_id = ?"  # user_id
    # installation values: keep the first caller's, then read whichever is kept
    keep_installation_value: str = (  # name, value
        "INSERT INTO installation (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING"
    )
    installation_value: str = "SELECT value FROM installation WHERE name = ?"  # name
    # heartbeats and events
    mark_seen: str = (  # device_id, seen_at, battery, charge
        "INSERT INTO device_seen (device_id, seen_at, battery, charge) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (device_id) DO UPDATE SET seen_at = excluded.seen_at,"
        " battery = excluded.battery, charge = excluded.charge"
        " WHERE excluded.seen_at > device_seen.seen_at"
    )
    seen_devices: str = SEEN_SELECT + " ORDER BY s.device_id"
    add_event: str = (  # device_id, event_time, kind, received_at, lat, lon
        "INSERT INTO events (device_id, event_time, kind, received_at, lat, lon)"
        f" VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING {EVENT_COLS}"
    )
    events: str = (  # device_id, start, end
        f"SELECT {EVENT_COLS} FROM events WHERE device_id = ?"
        " AND event_time >= ? AND event_time < ? ORDER BY event_time, id"
    )
    # positions
    live_positions: str = LIVE_SELECT + " ORDER BY lp.device_id"
    live_position: str = LIVE_SELECT + " WHERE lp.device_id = ?"  # device_id
    track: str = (  # device_id, start, end
        f"SELECT {FIX_COLS} FROM positions WHERE device_id = ?"
        " AND fix_time >= ? AND fix_time < ? ORDER BY fix_time"
    )

    def numbered(self) -> Statements:
        return Statements(**{f.name: numbered(getattr(self, f.name)) for f in fields(self)})


SQLITE = Statements()
POSTGRES = SQLITE.numbered()
