-- Operators run the fleet (docs/fleet.md): enrollment codes, vehicles and what
-- each serves today, per-device offline thresholds, what agents report about
-- themselves, calls with withdrawn tokens, share links and the audit log.

-- NULL: the server's OFFLINE_AFTER.
ALTER TABLE devices ADD COLUMN offline_after_s INTEGER CHECK (offline_after_s > 0);
-- The v1 body's agent object, latest per device; backlog_base is the backlog
-- reported about a minute before (at base_at), to tell a growing backlog.
ALTER TABLE devices ADD COLUMN agent_version TEXT;
ALTER TABLE devices ADD COLUMN backlog INTEGER;
ALTER TABLE devices ADD COLUMN agent_at INTEGER;
ALTER TABLE devices ADD COLUMN backlog_base INTEGER;
ALTER TABLE devices ADD COLUMN base_at INTEGER;
-- The last call rejected with this device's revoked or rotated-away token.
ALTER TABLE devices ADD COLUMN auth_error_at INTEGER;

-- Tokens a rotation or an enrollment replaced: a call with one is an auth
-- error of that device, not of a stranger.
CREATE TABLE retired_tokens (
    token_hash  TEXT PRIMARY KEY,
    device_id   INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    retired_at  INTEGER NOT NULL
) STRICT;

-- Used and expired codes stay, so a second try is told "used", not "unknown".
CREATE TABLE enrollment_codes (
    code_hash   TEXT PRIMARY KEY,
    device_id   INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
) STRICT;
CREATE INDEX enrollment_codes_device_idx ON enrollment_codes (device_id);

CREATE TABLE vehicles (
    id            INTEGER PRIMARY KEY,
    label         TEXT NOT NULL UNIQUE,
    plate         TEXT,
    -- The unit installed in it; a unit is in at most one vehicle.
    device_id     INTEGER UNIQUE REFERENCES devices (id) ON DELETE SET NULL,
    -- What it serves (GTFS ids, checked by whoever owns routes) and for which day.
    route_id      TEXT,
    trip_id       TEXT,
    block_id      TEXT,
    service_date  TEXT,
    created_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE shares (
    id          INTEGER PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    vehicle_id  INTEGER NOT NULL REFERENCES vehicles (id) ON DELETE CASCADE,
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
) STRICT;
CREATE INDEX shares_vehicle_idx ON shares (vehicle_id);

CREATE TABLE audit_log (
    id           INTEGER PRIMARY KEY,
    at           INTEGER NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    target_type  TEXT NOT NULL,
    target_id    TEXT NOT NULL,
    detail       TEXT NOT NULL  -- a JSON object
) STRICT;
