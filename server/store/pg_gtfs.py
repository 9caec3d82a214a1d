"""PostgisStore's static GTFS and routes: each function runs on a connection it is given.

An import deletes and refills the tables inside one transaction (DELETE, not
TRUNCATE: TRUNCATE's lock would stop every reader until the commit, while
with DELETE they keep reading the old feed until the new one commits).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from server.gtfs.model import Feed, FeedInfo, Route
from server.store import gtfs_sql as G
from server.store.base import Conflict

_UPSERT_ROUTE = G.pg(G.UPSERT_ROUTE)
_PUT_FEED = G.pg(G.PUT_FEED)
_GET_ROUTE = G.pg(G.GET_ROUTE)
_ADD_ROUTE = G.pg(G.ADD_ROUTE)
_DELETE_ROUTE = G.pg(G.DELETE_ROUTE)
_RAISE_WATERMARK = G.pg(G.RAISE_WATERMARK)


async def replace_feed(conn: Any, feed: Feed, version: str) -> FeedInfo:
    info = FeedInfo(version, feed.timezone, time.time(), len(feed.routes), len(feed.trips),
                    len(feed.stops))  # fmt: skip
    async with conn.transaction():
        for table in (*G.TABLES, "gtfs_feed"):
            await conn.execute(f"DELETE FROM {table}")
        await conn.execute(G.DELETE_GTFS_ROUTES)
        await conn.executemany(_UPSERT_ROUTE, [G.route_row(r) for r in feed.routes])
        for table, rows in G.feed_rows(feed).items():
            columns = G.TABLES[table].split(", ")
            await conn.copy_records_to_table(table, records=list(rows), columns=columns)
        await conn.execute(_PUT_FEED, info.version, info.timezone, info.imported_at,
                           info.routes, info.trips, info.stops)  # fmt: skip
    return info


async def feed_info(conn: Any) -> FeedInfo | None:
    row = await conn.fetchrow(G.FEED_INFO)
    return None if row is None else G.feed_info(row)


async def load_feed(conn: Any) -> Feed | None:
    # REPEATABLE READ: every table from the same import, even if one commits meanwhile.
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        info = await feed_info(conn)
        if info is None:
            return None
        routes = await list_routes(conn)
        tables = {t: [tuple(r) for r in await conn.fetch(sql)] for t, sql in G.SELECT.items()}
        return G.feed(info, routes, tables)


async def list_routes(conn: Any) -> list[Route]:
    return [G.route(r) for r in await conn.fetch(G.LIST_ROUTES)]


async def get_route(conn: Any, route_id: str) -> Route | None:
    row = await conn.fetchrow(_GET_ROUTE, route_id)
    return None if row is None else G.route(row)


async def add_route(conn: Any, route: Route) -> Route:
    try:
        row = await conn.fetchrow(_ADD_ROUTE, *G.route_row(route))
    except asyncpg.exceptions.UniqueViolationError as exc:
        raise Conflict(f"route {route.route_id!r} exists already") from exc
    return G.route(row)


async def update_route(conn: Any, route_id: str, changes: Mapping[str, Any]) -> Route | None:
    sql, args = G.update_route(changes)
    row = await conn.fetchrow(G.pg(sql), *args, route_id)
    return None if row is None else G.route(row)


async def delete_route(conn: Any, route_id: str) -> bool:
    return bool(await conn.execute(_DELETE_ROUTE, route_id) == "DELETE 1")


async def raise_watermark(conn: Any, name: str, value: int) -> int:
    return int(await conn.fetchval(_RAISE_WATERMARK, name, value))
