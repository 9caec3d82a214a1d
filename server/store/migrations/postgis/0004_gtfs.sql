-- Static GTFS (server/gtfs/) and the one list of routes. An import replaces every
-- table below but routes in one transaction; in routes it replaces only the rows
-- with source 'gtfs', so routes operators made (source 'operator') survive it.
-- Dates are YYYYMMDD text and times of day seconds after midnight, as in GTFS.
CREATE TABLE routes (
    route_id    TEXT PRIMARY KEY,
    agency_id   TEXT,
    short_name  TEXT,
    long_name   TEXT,
    type        INTEGER NOT NULL DEFAULT 3,
    color       TEXT,
    text_color  TEXT,
    source      TEXT NOT NULL CHECK (source IN ('gtfs', 'operator'))
);

-- The feed in the store now (one row at most): its content hash and time zone.
CREATE TABLE gtfs_feed (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    version      TEXT NOT NULL,
    timezone     TEXT NOT NULL,
    imported_at  DOUBLE PRECISION NOT NULL,
    routes       INTEGER NOT NULL,
    trips        INTEGER NOT NULL,
    stops        INTEGER NOT NULL
);

CREATE TABLE stops (
    stop_id  TEXT PRIMARY KEY,
    name     TEXT NOT NULL,
    lat      DOUBLE PRECISION NOT NULL,
    lon      DOUBLE PRECISION NOT NULL
);

CREATE TABLE trips (
    trip_id       TEXT PRIMARY KEY,
    route_id      TEXT NOT NULL,
    service_id    TEXT NOT NULL,
    shape_id      TEXT,
    block_id      TEXT,
    headsign      TEXT,
    direction_id  INTEGER
);

CREATE TABLE stop_times (
    trip_id        TEXT NOT NULL,
    stop_sequence  INTEGER NOT NULL,
    stop_id        TEXT NOT NULL,
    arrival_s      INTEGER,
    departure_s    INTEGER,
    PRIMARY KEY (trip_id, stop_sequence)
);

CREATE TABLE calendar (
    service_id  TEXT PRIMARY KEY,
    weekdays    TEXT NOT NULL,
    start_date  TEXT NOT NULL,
    end_date    TEXT NOT NULL
);

CREATE TABLE calendar_dates (
    service_id      TEXT NOT NULL,
    date            TEXT NOT NULL,
    exception_type  INTEGER NOT NULL,
    PRIMARY KEY (service_id, date)
);

CREATE TABLE shapes (
    shape_id  TEXT NOT NULL,
    sequence  INTEGER NOT NULL,
    lat       DOUBLE PRECISION NOT NULL,
    lon       DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (shape_id, sequence)
);

-- Values that only ever grow, shared by every replica: the GTFS-Realtime header
-- timestamp (docs/decisions.md, D50).
CREATE TABLE watermarks (
    name   TEXT PRIMARY KEY,
    value  BIGINT NOT NULL
);
