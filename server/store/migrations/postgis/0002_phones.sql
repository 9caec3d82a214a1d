-- Phones as trackers (OsmAnd): what they report with a fix, their heartbeats
-- (requests without a position) and the events they raise (SOS).
-- Columns added to the partitioned positions table reach every partition.

ALTER TABLE positions ADD COLUMN accuracy double precision;
ALTER TABLE positions ADD COLUMN battery double precision;
ALTER TABLE positions ADD COLUMN charge boolean;
ALTER TABLE last_positions ADD COLUMN accuracy double precision;
ALTER TABLE last_positions ADD COLUMN battery double precision;
ALTER TABLE last_positions ADD COLUMN charge boolean;

-- The last request without a position, one row per device; seen_at only moves forward.
CREATE TABLE device_seen (
    device_id  bigint PRIMARY KEY REFERENCES devices (id),
    seen_at    timestamptz NOT NULL,
    battery    double precision,
    charge     boolean
);

-- One row per (device, time, kind): a phone resending the same alarm stores it once.
CREATE TABLE events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id    bigint NOT NULL REFERENCES devices (id),
    event_time   timestamptz NOT NULL,
    kind         text NOT NULL,
    received_at  timestamptz NOT NULL,
    lat          double precision,
    lon          double precision,
    UNIQUE (device_id, event_time, kind)
);
