"""Numbered SQL migrations of both stores, and the one loader that reads them.

Layout, next to this module::

    postgis/NNNN_name.sql    applied by server/store/pg_migrate.py (schema_migrations)
    sqlite/NNNN_name.sql     applied by server/store/sqlite_schema.py (PRAGMA user_version)

A schema change is one version written for both stores: the two directories
must hold the same versions under the same names, or the loader refuses both
(``MigrationLayoutError``), so a store can never silently lag behind the
other. Versions run 1, 2, 3, ... without gaps, because SQLite records only
the version reached (file N takes ``user_version`` from N - 1 to N).

No database driver is imported here: ``server.store`` re-exports
``SchemaNotCurrent``, and a SQLite-only install has no asyncpg.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Backend = Literal["postgis", "sqlite"]
BACKENDS: tuple[Backend, ...] = ("postgis", "sqlite")
MIGRATIONS_DIR = Path(__file__).parent
_FILE_RE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class SchemaNotCurrent(RuntimeError):
    """The database lacks migrations this code needs; run ``bustracker migrate``."""

    def __init__(self, missing: list[str]) -> None:
        self.missing = missing
        super().__init__(
            "database schema is not current: missing migration(s) "
            + ", ".join(missing)
            + "; run `bustracker migrate` first"
        )


class MigrationLayoutError(RuntimeError):
    """The migration files are misnamed, or one store has a migration the other lacks."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str  # the file's stem, "0002_phones": what the databases record
    path: Path

    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")


def available(backend: Backend, root: Path = MIGRATIONS_DIR) -> list[Migration]:
    """``backend``'s migrations in version order, after checking the whole layout."""
    return load(root)[backend]


def load(root: Path = MIGRATIONS_DIR) -> dict[Backend, list[Migration]]:
    """Every store's migrations; raise MigrationLayoutError unless they pair up."""
    found = {backend: _read(root / backend) for backend in BACKENDS}
    names = {backend: [m.name for m in found[backend]] for backend in BACKENDS}
    if names["postgis"] != names["sqlite"]:
        postgis, sqlite = set(names["postgis"]), set(names["sqlite"])
        raise MigrationLayoutError(
            "both stores need the same migrations:"
            f" only postgis/ has {sorted(postgis - sqlite) or 'nothing'},"
            f" only sqlite/ has {sorted(sqlite - postgis) or 'nothing'}"
        )
    return found


def _read(directory: Path) -> list[Migration]:
    found: list[Migration] = []
    for path in directory.glob("*.sql"):
        match = _FILE_RE.match(path.name)
        if match is None:
            raise MigrationLayoutError(
                f"migration file {directory.name}/{path.name} is not named NNNN_name.sql"
            )
        found.append(Migration(int(match.group(1)), path.stem, path))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise MigrationLayoutError(
            f"{directory.name}/ migrations must be numbered 1, 2, 3, ... once each: {versions}"
        )
    return found
