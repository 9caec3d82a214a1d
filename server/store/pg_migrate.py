"""Applying the PostGIS store's migrations (``migrations/postgis/``).

Each applied version is a row of ``schema_migrations``. A run holds a
transaction-scoped advisory lock, so two processes starting at once (two
replicas, or ``bustracker migrate`` racing a server) serialise instead of both
trying to create the same tables; the second one finds nothing pending.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from server.store.migrations import Migration, SchemaNotCurrent, available

if TYPE_CHECKING:
    import asyncpg  # type: ignore[import-untyped]

# Arbitrary but fixed: every bustracker process must agree on it.
LOCK_KEY = 0x6275_7374_7261_636B  # "bustrack"

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


async def applied_versions(conn: asyncpg.Connection) -> set[int]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return set()
    rows = await conn.fetch("SELECT version FROM schema_migrations")
    return {int(r["version"]) for r in rows}


async def pending(conn: asyncpg.Connection) -> list[Migration]:
    done = await applied_versions(conn)
    return [m for m in available("postgis") if m.version not in done]


async def check(conn: asyncpg.Connection) -> None:
    """Raise SchemaNotCurrent naming every migration not yet applied."""
    missing = await pending(conn)
    if missing:
        raise SchemaNotCurrent([m.name for m in missing])


async def apply(conn: asyncpg.Connection) -> list[str]:
    """Apply pending migrations in one transaction; return the names applied."""
    names: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
        await conn.execute(_CREATE_TABLE)
        # Read after taking the lock: a concurrent starter may just have finished.
        for migration in await pending(conn):
            await conn.execute(migration.sql())
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            names.append(migration.name)
    return names
