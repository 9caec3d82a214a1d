-- Initial SQLite schema. Times are integer epoch microseconds (UTC): exact for
-- a Python datetime and ordered like the instants they stand for.
-- Applied by SqliteStore inside one BEGIN IMMEDIATE transaction; the version
-- lives in PRAGMA user_version (this file is version 1).

CREATE TABLE devices (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    token_hash  TEXT NOT NULL UNIQUE,
    active      INTEGER NOT NULL DEFAULT 1,
    in_service  INTEGER NOT NULL DEFAULT 1,
    route       TEXT,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE users (
    id             INTEGER PRIMARY KEY,
    username       TEXT NOT NULL UNIQUE,
    password_hash  TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    created_at     INTEGER NOT NULL
) STRICT;

-- WITHOUT ROWID: the (device, time) key is the table's order, so a track is
-- one range scan and there is no second index to keep up to date on ingest.
CREATE TABLE positions (
    device_id    INTEGER NOT NULL REFERENCES devices (id),
    fix_time     INTEGER NOT NULL,
    received_at  INTEGER NOT NULL,
    lat REAL NOT NULL, lon REAL NOT NULL, alt REAL, speed REAL, heading REAL,
    hdop REAL, sats INTEGER, mode INTEGER,
    PRIMARY KEY (device_id, fix_time)
) STRICT, WITHOUT ROWID;

CREATE TABLE last_positions (
    device_id    INTEGER PRIMARY KEY REFERENCES devices (id),
    fix_time     INTEGER NOT NULL,
    received_at  INTEGER NOT NULL,
    lat REAL NOT NULL, lon REAL NOT NULL, alt REAL, speed REAL, heading REAL,
    hdop REAL, sats INTEGER, mode INTEGER
) STRICT;
