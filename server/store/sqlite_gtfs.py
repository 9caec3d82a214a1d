"""SqliteStore's static GTFS and routes: each function runs on a connection it is given."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping
from typing import Any

from server.gtfs.model import Feed, FeedInfo, Route
from server.store import gtfs_sql as G
from server.store import sqlite_schema as schema
from server.store.base import Conflict


def replace_feed(conn: sqlite3.Connection, feed: Feed, version: str) -> FeedInfo:
    """Swap the stored feed for ``feed`` in one transaction: all of it or none of it."""
    info = FeedInfo(version, feed.timezone, time.time(), len(feed.routes), len(feed.trips),
                    len(feed.stops))  # fmt: skip
    with schema.transaction(conn):
        for table in (*G.TABLES, "gtfs_feed"):
            conn.execute(f"DELETE FROM {table}")
        conn.execute(G.DELETE_GTFS_ROUTES)
        conn.executemany(G.UPSERT_ROUTE, [G.route_row(r) for r in feed.routes])
        for table, rows in G.feed_rows(feed).items():
            conn.executemany(G.insert(table, G.TABLES[table]), rows)
        conn.execute(G.PUT_FEED, (info.version, info.timezone, info.imported_at, info.routes,
                                  info.trips, info.stops))  # fmt: skip
    return info


def feed_info(conn: sqlite3.Connection) -> FeedInfo | None:
    row = conn.execute(G.FEED_INFO).fetchone()
    return None if row is None else G.feed_info(row)


def load_feed(conn: sqlite3.Connection) -> Feed | None:
    # One read transaction: the feed and its tables from the same import.
    conn.execute("BEGIN")
    try:
        info = feed_info(conn)
        if info is None:
            return None
        routes = list_routes(conn)
        tables = {t: [tuple(r) for r in conn.execute(sql)] for t, sql in G.SELECT.items()}
        return G.feed(info, routes, tables)
    finally:
        conn.execute("COMMIT")


def list_routes(conn: sqlite3.Connection) -> list[Route]:
    return [G.route(r) for r in conn.execute(G.LIST_ROUTES)]


def get_route(conn: sqlite3.Connection, route_id: str) -> Route | None:
    row = conn.execute(G.GET_ROUTE, (route_id,)).fetchone()
    return None if row is None else G.route(row)


def add_route(conn: sqlite3.Connection, route: Route) -> Route:
    try:
        with schema.transaction(conn):
            row = conn.execute(G.ADD_ROUTE, G.route_row(route)).fetchone()
    except sqlite3.IntegrityError as exc:
        if exc.sqlite_errorcode in (sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY,
                                    sqlite3.SQLITE_CONSTRAINT_UNIQUE):  # fmt: skip
            raise Conflict(f"route {route.route_id!r} exists already") from exc
        raise
    return G.route(row)


def update_route(
    conn: sqlite3.Connection, route_id: str, changes: Mapping[str, Any]
) -> Route | None:
    sql, args = G.update_route(changes)
    with schema.transaction(conn):
        row = conn.execute(sql, (*args, route_id)).fetchone()
    return None if row is None else G.route(row)


def delete_route(conn: sqlite3.Connection, route_id: str) -> bool:
    with schema.transaction(conn):
        return conn.execute(G.DELETE_ROUTE, (route_id,)).rowcount == 1


def raise_watermark(conn: sqlite3.Connection, name: str, value: int) -> int:
    with schema.transaction(conn):
        return int(conn.execute(G.RAISE_WATERMARK, (name, value)).fetchone()[0])
