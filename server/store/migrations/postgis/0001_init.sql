-- Initial schema. Applied by PostgisStore.migrate() inside one transaction that
-- holds an advisory lock, so two servers starting together cannot both run it.

CREATE EXTENSION IF NOT EXISTS postgis;

CREATE TABLE devices (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    -- Only a hash of the bearer token is kept; unique so a lookup finds one device.
    token_hash  text NOT NULL UNIQUE,
    active      boolean NOT NULL DEFAULT true,
    in_service  boolean NOT NULL DEFAULT true,
    route       text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username       text NOT NULL UNIQUE,
    password_hash  text NOT NULL,
    role           text NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- Partitioned by UTC day so retention is DROP TABLE, not a DELETE that bloats.
-- The primary key must contain the partition key; (device_id, fix_time) is
-- exactly the dedupe identity of a fix, so it doubles as the idempotency key.
CREATE TABLE positions (
    device_id    bigint NOT NULL REFERENCES devices (id),
    fix_time     timestamptz NOT NULL,
    received_at  timestamptz NOT NULL,
    lat          double precision NOT NULL,
    lon          double precision NOT NULL,
    alt          double precision,
    speed        double precision,
    heading      double precision,
    hdop         double precision,
    sats         integer,
    mode         integer,
    geog         geography(Point, 4326) NOT NULL,
    PRIMARY KEY (device_id, fix_time)
) PARTITION BY RANGE (fix_time);

-- Catches fixes for days that have no partition (GPS clock far off, long
-- backlogs) so nothing is ever rejected for lack of a partition.
CREATE TABLE positions_default PARTITION OF positions DEFAULT;

CREATE TABLE last_positions (
    device_id    bigint PRIMARY KEY REFERENCES devices (id),
    fix_time     timestamptz NOT NULL,
    received_at  timestamptz NOT NULL,
    lat          double precision NOT NULL,
    lon          double precision NOT NULL,
    alt          double precision,
    speed        double precision,
    heading      double precision,
    hdop         double precision,
    sats         integer,
    mode         integer,
    geog         geography(Point, 4326) NOT NULL
);

CREATE INDEX last_positions_geog_idx ON last_positions USING gist (geog);
