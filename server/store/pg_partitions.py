"""Daily partitions of ``positions``: created ahead, dropped after the retention period.

``bustracker worker`` runs this upkeep (``server/worker.py``), and each API
process's start makes sure this week's partitions exist; an advisory lock
serialises concurrent runs and each step is idempotent.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from server.store import pg_migrate

LOCK_KEY = pg_migrate.LOCK_KEY + 1
_NAME_RE = re.compile(r"^positions_(\d{8})$")


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


async def ensure(conn: Any, today: date, days_behind: int, days_ahead: int) -> list[str]:
    """Create the missing daily partitions around ``today``; return their names."""
    created: list[str] = []
    for offset in range(-days_behind, days_ahead + 1):
        day = today + timedelta(days=offset)
        if await create(conn, day):
            created.append(f"positions_{day:%Y%m%d}")
    return created


async def create(conn: Any, day: date) -> bool:
    name = f"positions_{day:%Y%m%d}"
    lo, hi = _day_start(day), _day_start(day + timedelta(days=1))
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
        if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name):
            return False
        # Creating the partition needs this lock anyway; taking it first means
        # no insert can slip a row for this day into the default partition
        # between moving the strays out and attaching the new table.
        await conn.execute("SET LOCAL lock_timeout = '5s'")
        await conn.execute("LOCK TABLE positions IN ACCESS EXCLUSIVE MODE")
        strays = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM positions_default"
            " WHERE fix_time >= $1 AND fix_time < $2)",
            lo,
            hi,
        )
        if strays:
            # PostgreSQL refuses a new partition while the default one holds
            # rows of its range, so move them through a temporary table.
            await conn.execute("CREATE TEMP TABLE _moving (LIKE positions) ON COMMIT DROP")
            await conn.execute(
                "WITH m AS (DELETE FROM positions_default"
                " WHERE fix_time >= $1 AND fix_time < $2 RETURNING *)"
                " INSERT INTO _moving SELECT * FROM m",
                lo,
                hi,
            )
        # DDL takes no bind parameters; both values derive from a date object.
        await conn.execute(
            f"CREATE TABLE {name} PARTITION OF positions"
            f" FOR VALUES FROM ('{lo.isoformat()}') TO ('{hi.isoformat()}')"
        )
        if strays:
            await conn.execute("INSERT INTO positions SELECT * FROM _moving")
    return True


async def drop_older(conn: Any, cutoff: datetime) -> tuple[list[str], int]:
    """Drop the daily partitions of days before ``cutoff`` (a UTC midnight).

    Old rows that sit in the default partition are deleted too, so the
    retention promise holds even for fixes that never had a partition.
    Return the partitions dropped and the number of rows deleted.
    """
    dropped: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
        rows = await conn.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'positions'::regclass ORDER BY c.relname"
        )
        for row in rows:
            match = _NAME_RE.match(row["relname"])
            if match and datetime.strptime(match.group(1), "%Y%m%d").date() < cutoff.date():
                await conn.execute(f"DROP TABLE {row['relname']}")
                dropped.append(row["relname"])
        status = await conn.execute("DELETE FROM positions_default WHERE fix_time < $1", cutoff)
    return dropped, int(status.split()[-1])
