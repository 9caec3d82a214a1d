"""Pick the store from configuration: PostGIS for a PostgreSQL URL, else SQLite."""

from __future__ import annotations

from pathlib import Path

from server.settings import StoreSettings
from server.store.base import Conflict, Store, StoreUnavailable
from server.store.migrations import SchemaNotCurrent

__all__ = [
    "Conflict",
    "SchemaNotCurrent",
    "Store",
    "StoreUnavailable",
    "open_configured",
    "open_store",
]

SQLITE_FILENAME = "bustracker.sqlite3"
_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def open_store(
    database_url: str | None,
    data_dir: Path,
    *,
    migrate: bool = True,
    pool_size: int = 10,
    pgbouncer: bool = False,
    read_url: str | None = None,
    read_max_lag_s: float = 30.0,
) -> Store:
    """Build the configured store without connecting: the caller awaits ``open()``.

    ``migrate=False`` makes a PostGIS ``open()`` only check that the schema is
    current (raising SchemaNotCurrent); apply migrations with ``store.migrate()``,
    which needs no ``open()``. ``pool_size`` caps the PostGIS connection pool;
    ``pgbouncer`` says DATABASE_URL is PgBouncer in transaction mode, and
    ``read_url`` names a read replica for history reads (both PostGIS only).
    SQLite always brings its own file up to date: it is the zero-setup default
    and has no separate operator step.
    The backends are imported lazily so a SQLite-only install never needs asyncpg.
    """
    if database_url and database_url.startswith(_POSTGRES_SCHEMES):
        from server.store.postgis import PostgisStore

        return PostgisStore(
            database_url,
            migrate=migrate,
            max_size=pool_size,
            pgbouncer=pgbouncer,
            read_url=read_url,
            read_max_lag_s=read_max_lag_s,
        )
    if database_url:
        raise ValueError(
            "DATABASE_URL must start with postgresql:// or postgres://"
            " (leave it unset for the embedded SQLite store)"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    from server.store.sqlite import SqliteStore

    return SqliteStore(data_dir / SQLITE_FILENAME)


def open_configured(settings: StoreSettings, *, migrate: bool = True) -> Store:
    """``open_store`` with every store setting of ``settings``."""
    return open_store(
        settings.database_url,
        settings.data_dir,
        migrate=migrate,
        pool_size=settings.db_pool_size,
        pgbouncer=settings.db_pgbouncer,
        read_url=settings.database_read_url,
        read_max_lag_s=settings.db_read_max_lag_s,
    )
