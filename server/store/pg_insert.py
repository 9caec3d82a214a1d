"""The PostGIS batch inserts: one statement per batch or per group of batches.

Every form dedupes inside what it inserts (first occurrence wins, as it would
on a retry), inserts with ON CONFLICT DO NOTHING to count what was new, and
moves last_positions only forward. All CTEs share one snapshot and commit
together.

- ``insert_batch``: one device's batch, bound as arrays, or through COPY from
  ``COPY_FROM`` fixes on (backfill).
- ``insert_group``: small batches of many devices in one statement, as
  ``server/store/groups.py`` gathers them while the database is busy.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from server.model import FixIn
from server.store.groups import Job
from server.store.sql import FIX_COLS, FLEET_COLS, FLEET_JOIN

# From this many fixes on, COPY into a staging table beats binding nine arrays.
COPY_FROM = 64

# last_positions moves only to a newer fix: an old batch arriving late never rolls it back.
_MOVE_FORWARD = """ON CONFLICT (device_id) DO UPDATE SET
        fix_time = excluded.fix_time, received_at = excluded.received_at,
        lat = excluded.lat, lon = excluded.lon, alt = excluded.alt,
        speed = excluded.speed, heading = excluded.heading, hdop = excluded.hdop,
        sats = excluded.sats, mode = excluded.mode, accuracy = excluded.accuracy,
        battery = excluded.battery, charge = excluded.charge, geog = excluded.geog
    WHERE excluded.fix_time > last_positions.fix_time"""

_STATEMENT = """
WITH batch AS (
    SELECT DISTINCT ON (fix_time) {cols}
    FROM {source}
    ORDER BY fix_time, ord
),
stored AS (
    INSERT INTO positions (device_id, received_at, {cols}, geog)
    SELECT {device}, {received}, {cols}, ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography
    FROM batch
    ON CONFLICT (device_id, fix_time) DO NOTHING
    RETURNING fix_time
),
moved AS (
    INSERT INTO last_positions (device_id, received_at, {cols}, geog)
    SELECT {device}, {received}, {cols}, ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography
    FROM (SELECT * FROM batch ORDER BY fix_time DESC LIMIT 1) AS newest
    {move_forward}
    RETURNING device_id, received_at, {cols}
)
SELECT (SELECT count(*) FROM stored) AS accepted, m.*, {fleet}
FROM (SELECT 1) AS one
LEFT JOIN moved AS m ON true
LEFT JOIN devices AS d ON d.id = m.device_id {fleet_join}
"""

# Small batches (live mode): one round trip, the columns bound as arrays.
INSERT_BATCH = _STATEMENT.format(
    cols=FIX_COLS,
    source=f"""unnest($2::timestamptz[], $3::float8[], $4::float8[], $5::float8[], $6::float8[],
                $7::float8[], $8::float8[], $9::int4[], $10::int4[], $11::float8[],
                $12::float8[], $13::bool[])
         WITH ORDINALITY AS b({FIX_COLS}, ord)""",
    device="$1",
    received="$14",
    move_forward=_MOVE_FORWARD,
    fleet=FLEET_COLS,
    fleet_join=FLEET_JOIN,
)

# Large batches (backfill): COPY into this per-connection staging table, then one
# statement. ON COMMIT DELETE ROWS empties it with the transaction (a rollback
# discards the rows anyway), so every batch starts from an empty table.
STAGE = "bustracker_fix_stage"
CREATE_STAGE = f"""CREATE TEMP TABLE IF NOT EXISTS {STAGE} (
    ord int4 NOT NULL, fix_time timestamptz NOT NULL, lat float8 NOT NULL, lon float8 NOT NULL,
    alt float8, speed float8, heading float8, hdop float8, sats int4, mode int4,
    accuracy float8, battery float8, charge bool
) ON COMMIT DELETE ROWS"""
_STAGE_COLUMNS = ["ord", *FIX_COLS.split(", ")]
INSERT_STAGED = _STATEMENT.format(
    cols=FIX_COLS,
    source=STAGE,
    device="$1",
    received="$2",
    move_forward=_MOVE_FORWARD,
    fleet=FLEET_COLS,
    fleet_join=FLEET_JOIN,
)


async def prepare_connection(conn: Any) -> None:
    """Pool ``init``: give each new connection its staging table.

    The pool keeps sessions (no DISCARD on release), so the table lives as long
    as the connection; IF NOT EXISTS makes a repeated call harmless.
    """
    await conn.execute(CREATE_STAGE)


async def insert_batch(
    conn: Any,
    device_id: int,
    fixes: Sequence[FixIn],
    received_at: datetime,
    *,
    make_stage: bool = False,
) -> Any:
    """Run the batch insert on ``conn``; return its single result row.

    ``make_stage``: create the staging table first (behind PgBouncer the server
    connection may never have met ``prepare_connection``).
    """
    if len(fixes) < COPY_FROM:
        columns = (
            [f.t for f in fixes], [f.lat for f in fixes], [f.lon for f in fixes],
            [f.alt for f in fixes], [f.speed for f in fixes], [f.heading for f in fixes],
            [f.hdop for f in fixes], [f.sats for f in fixes], [f.mode for f in fixes],
            [f.accuracy for f in fixes], [f.battery for f in fixes], [f.charge for f in fixes],
        )  # fmt: skip
        return await conn.fetchrow(INSERT_BATCH, device_id, *columns, received_at)
    records = [
        (
            i,
            f.t,
            f.lat,
            f.lon,
            f.alt,
            f.speed,
            f.heading,
            f.hdop,
            f.sats,
            f.mode,
            f.accuracy,
            f.battery,
            f.charge,
        )
        for i, f in enumerate(fixes)
    ]
    async with conn.transaction():
        if make_stage:
            await conn.execute(CREATE_STAGE)
        await conn.copy_records_to_table(STAGE, records=records, columns=_STAGE_COLUMNS)
        return await conn.fetchrow(INSERT_STAGED, device_id, received_at)


_INPUT_COLS = ", ".join(f"i.{col}" for col in FIX_COLS.split(", "))

# Rows are sorted by device before they are inserted, so two groups that hold
# the same devices take their locks in the same order and cannot deadlock.
INSERT_GROUP = f"""
WITH input AS (
    SELECT * FROM unnest($1::int4[], $2::timestamptz[], $3::float8[], $4::float8[],
                         $5::float8[], $6::float8[], $7::float8[], $8::float8[], $9::int4[],
                         $10::int4[], $11::float8[], $12::float8[], $13::bool[])
        WITH ORDINALITY AS i(req, {FIX_COLS}, ord)
),
reqs AS (
    SELECT * FROM unnest($14::int8[], $15::timestamptz[])
        WITH ORDINALITY AS r(device_id, received_at, req)
),
batch AS (
    SELECT DISTINCT ON (r.device_id, i.fix_time) i.req, r.device_id, r.received_at, {_INPUT_COLS}
    FROM input AS i JOIN reqs AS r ON r.req = i.req
    ORDER BY r.device_id, i.fix_time, i.ord
),
stored AS (
    INSERT INTO positions (device_id, received_at, {FIX_COLS}, geog)
    SELECT device_id, received_at, {FIX_COLS},
           ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography
    FROM batch
    ON CONFLICT (device_id, fix_time) DO NOTHING
    RETURNING device_id, fix_time
),
counted AS (
    SELECT b.req, count(*) AS accepted
    FROM stored AS s JOIN batch AS b ON b.device_id = s.device_id AND b.fix_time = s.fix_time
    GROUP BY b.req
),
moved AS (
    INSERT INTO last_positions (device_id, received_at, {FIX_COLS}, geog)
    SELECT device_id, received_at, {FIX_COLS},
           ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography
    FROM (SELECT DISTINCT ON (device_id) * FROM batch ORDER BY device_id, fix_time DESC) AS newest
    {_MOVE_FORWARD}
    RETURNING device_id, received_at, {FIX_COLS}
)
SELECT r.req, coalesce(c.accepted, 0) AS accepted, m.*, {FLEET_COLS}
FROM reqs AS r
LEFT JOIN counted AS c ON c.req = r.req
LEFT JOIN moved AS m ON m.device_id = r.device_id
LEFT JOIN devices AS d ON d.id = m.device_id {FLEET_JOIN}
ORDER BY r.req
"""


async def insert_group(conn: Any, jobs: Sequence[Job]) -> list[Any]:
    """Insert several devices' small batches in one statement; one row per job, in order.

    A row's ``accepted`` counts the fixes of that job that were new; the
    moved-position columns are set on every job of a device whose live
    position this group moved forward.
    """
    req: list[int] = []
    cols: tuple[list[Any], ...] = tuple([] for _ in FIX_COLS.split(", "))
    t, lat, lon, alt, speed, heading, hdop, sats, mode, accuracy, battery, charge = cols
    for n, job in enumerate(jobs, start=1):
        for f in job.fixes:
            req.append(n)
            t.append(f.t)
            lat.append(f.lat)
            lon.append(f.lon)
            alt.append(f.alt)
            speed.append(f.speed)
            heading.append(f.heading)
            hdop.append(f.hdop)
            sats.append(f.sats)
            mode.append(f.mode)
            accuracy.append(f.accuracy)
            battery.append(f.battery)
            charge.append(f.charge)
    devices = [job.device_id for job in jobs]
    received = [job.received_at for job in jobs]
    rows: list[Any] = await conn.fetch(INSERT_GROUP, req, *cols, devices, received)
    return rows
