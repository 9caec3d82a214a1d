-- Phones as trackers (OsmAnd): what they report with a fix, their heartbeats
-- (requests without a position) and the events they raise (SOS).

ALTER TABLE positions ADD COLUMN accuracy REAL;
ALTER TABLE positions ADD COLUMN battery REAL;
ALTER TABLE positions ADD COLUMN charge INTEGER;
ALTER TABLE last_positions ADD COLUMN accuracy REAL;
ALTER TABLE last_positions ADD COLUMN battery REAL;
ALTER TABLE last_positions ADD COLUMN charge INTEGER;

-- The last request without a position, one row per device; seen_at only moves forward.
CREATE TABLE device_seen (
    device_id  INTEGER PRIMARY KEY REFERENCES devices (id),
    seen_at    INTEGER NOT NULL,
    battery    REAL,
    charge     INTEGER
) STRICT;

-- One row per (device, time, kind): a phone resending the same alarm stores it once.
CREATE TABLE events (
    id           INTEGER PRIMARY KEY,
    device_id    INTEGER NOT NULL REFERENCES devices (id),
    event_time   INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    received_at  INTEGER NOT NULL,
    lat REAL, lon REAL,
    UNIQUE (device_id, event_time, kind)
) STRICT;
