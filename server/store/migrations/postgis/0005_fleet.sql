-- Operators run the fleet (docs/fleet.md): enrollment codes, vehicles and what
-- each serves today, per-device offline thresholds, what agents report about
-- themselves, calls with withdrawn tokens, share links and the audit log.

-- NULL: the server's OFFLINE_AFTER.
ALTER TABLE devices ADD COLUMN offline_after_s integer CHECK (offline_after_s > 0);
-- The v1 body's agent object, latest per device; backlog_base is the backlog
-- reported about a minute before (at base_at), to tell a growing backlog.
ALTER TABLE devices ADD COLUMN agent_version text;
ALTER TABLE devices ADD COLUMN backlog integer;
ALTER TABLE devices ADD COLUMN agent_at timestamptz;
ALTER TABLE devices ADD COLUMN backlog_base integer;
ALTER TABLE devices ADD COLUMN base_at timestamptz;
-- The last call rejected with this device's revoked or rotated-away token.
ALTER TABLE devices ADD COLUMN auth_error_at timestamptz;

-- Tokens a rotation or an enrollment replaced: a call with one is an auth
-- error of that device, not of a stranger.
CREATE TABLE retired_tokens (
    token_hash  text PRIMARY KEY,
    device_id   bigint NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    retired_at  timestamptz NOT NULL
);

-- Used and expired codes stay, so a second try is told "used", not "unknown".
CREATE TABLE enrollment_codes (
    code_hash   text PRIMARY KEY,
    device_id   bigint NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX enrollment_codes_device_idx ON enrollment_codes (device_id);

CREATE TABLE vehicles (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    label         text NOT NULL UNIQUE,
    plate         text,
    -- The unit installed in it; a unit is in at most one vehicle.
    device_id     bigint UNIQUE REFERENCES devices (id) ON DELETE SET NULL,
    -- What it serves (GTFS ids, checked by whoever owns routes) and for which day.
    route_id      text,
    trip_id       text,
    block_id      text,
    service_date  text,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE shares (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_hash  text NOT NULL UNIQUE,
    vehicle_id  bigint NOT NULL REFERENCES vehicles (id) ON DELETE CASCADE,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX shares_vehicle_idx ON shares (vehicle_id);

CREATE TABLE audit_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL,
    actor        text NOT NULL,
    action       text NOT NULL,
    target_type  text NOT NULL,
    target_id    text NOT NULL,
    detail       text NOT NULL  -- a JSON object
);
