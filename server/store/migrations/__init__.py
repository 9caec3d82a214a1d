"""Numbered SQL migrations for the PostGIS store, and the code that applies them.

Files are ``NNNN_name.sql`` next to this module, applied in version order. Each
run holds a transaction-scoped advisory lock, so two processes starting at once
(two replicas, or ``bustracker migrate`` racing a server) serialise instead of
both trying to create the same tables; the second one finds nothing pending.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Annotations only: server.store re-exports SchemaNotCurrent, and importing
    # it must not require asyncpg.
    import asyncpg  # type: ignore[import-untyped]

MIGRATIONS_DIR = Path(__file__).parent
_FILE_RE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# Arbitrary but fixed: every bustracker process must agree on it.
LOCK_KEY = 0x6275_7374_7261_636B  # "bustrack"

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


class SchemaNotCurrent(RuntimeError):
    """The database lacks migrations this code needs; run ``bustracker migrate``."""

    def __init__(self, missing: list[str]) -> None:
        self.missing = missing
        super().__init__(
            "database schema is not current: missing migration(s) "
            + ", ".join(missing)
            + "; run `bustracker migrate` first"
        )


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    path: Path

    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")


def available() -> list[Migration]:
    found: list[Migration] = []
    for path in MIGRATIONS_DIR.glob("*.sql"):
        match = _FILE_RE.match(path.name)
        if match is None:
            raise RuntimeError(f"migration file {path.name!r} is not named NNNN_name.sql")
        found.append(Migration(int(match.group(1)), path.stem, path))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migration files share a version number: {versions}")
    return found


async def applied_versions(conn: asyncpg.Connection) -> set[int]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return set()
    rows = await conn.fetch("SELECT version FROM schema_migrations")
    return {int(r["version"]) for r in rows}


async def pending(conn: asyncpg.Connection) -> list[Migration]:
    done = await applied_versions(conn)
    return [m for m in available() if m.version not in done]


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
