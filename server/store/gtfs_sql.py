"""The static-GTFS SQL both stores run, and turning its rows into ``server.gtfs.model`` records.

Written with ``?`` placeholders like ``server/store/sql.py``; ``numbered``
makes PostgreSQL's. Both stores keep the same plain types (text dates as
YYYYMMDD, seconds after midnight, epoch seconds), so rows convert the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from server.gtfs.model import (
    Calendar,
    CalendarDate,
    Feed,
    FeedInfo,
    Route,
    ShapePoint,
    Stop,
    StopTime,
    Trip,
)
from server.store.sql import numbered

ROUTE_COLS = "route_id, short_name, long_name, type, color, text_color, agency_id, source"
FEED_COLS = "version, timezone, imported_at, routes, trips, stops"
# What an operator may change on a route of their own (PATCH /v1/routes/{id}).
ROUTE_FIELDS = ("short_name", "long_name", "type", "color", "text_color")

# table -> columns, in the order ``feed_rows`` yields them; routes are handled apart.
TABLES: dict[str, str] = {
    "stops": "stop_id, name, lat, lon",
    "trips": "trip_id, route_id, service_id, shape_id, block_id, headsign, direction_id",
    "stop_times": "trip_id, stop_sequence, stop_id, arrival_s, departure_s",
    "calendar": "service_id, weekdays, start_date, end_date",
    "calendar_dates": "service_id, date, exception_type",
    "shapes": "shape_id, sequence, lat, lon",
}


def _day(value: date) -> str:
    return f"{value:%Y%m%d}"


def _date(text: str) -> date:
    return date(int(text[:4]), int(text[4:6]), int(text[6:]))


def route_row(route: Route) -> tuple[Any, ...]:
    return (route.route_id, route.short_name, route.long_name, route.type, route.color,
            route.text_color, route.agency_id, route.source)  # fmt: skip


def feed_rows(feed: Feed) -> dict[str, Iterable[tuple[Any, ...]]]:
    return {
        "stops": [(s.stop_id, s.name, s.lat, s.lon) for s in feed.stops],
        "trips": [
            (
                t.trip_id,
                t.route_id,
                t.service_id,
                t.shape_id,
                t.block_id,
                t.headsign,
                t.direction_id,
            )
            for t in feed.trips
        ],
        "stop_times": [
            (s.trip_id, s.stop_sequence, s.stop_id, s.arrival_s, s.departure_s)
            for s in feed.stop_times
        ],
        "calendar": [
            (c.service_id, c.weekdays, _day(c.start_date), _day(c.end_date)) for c in feed.calendars
        ],
        "calendar_dates": [
            (d.service_id, _day(d.date), d.exception_type) for d in feed.calendar_dates
        ],
        "shapes": [(p.shape_id, p.sequence, p.lat, p.lon) for p in feed.shape_points],
    }


def route(row: Mapping[str, Any]) -> Route:
    return Route(row["route_id"], row["short_name"], row["long_name"], int(row["type"]),
                 row["color"], row["text_color"], row["agency_id"], row["source"])  # fmt: skip


def feed_info(row: Mapping[str, Any]) -> FeedInfo:
    return FeedInfo(row["version"], row["timezone"], float(row["imported_at"]),
                    int(row["routes"]), int(row["trips"]), int(row["stops"]))  # fmt: skip


def feed(info: FeedInfo, routes: list[Route], tables: dict[str, list[Any]]) -> Feed:
    """The stored feed back as records, from each table's rows (``TABLES`` order)."""
    return Feed(
        timezone=info.timezone,
        routes=tuple(routes),
        stops=tuple(Stop(*r) for r in tables["stops"]),
        trips=tuple(Trip(*r) for r in tables["trips"]),
        stop_times=tuple(StopTime(*r) for r in tables["stop_times"]),
        calendars=tuple(Calendar(r[0], r[1], _date(r[2]), _date(r[3])) for r in tables["calendar"]),
        calendar_dates=tuple(
            CalendarDate(r[0], _date(r[1]), int(r[2])) for r in tables["calendar_dates"]
        ),
        shape_points=tuple(ShapePoint(*r) for r in tables["shapes"]),
    )


def insert(table: str, columns: str) -> str:
    return f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(columns.split(',')))})"


# Ordered so a reader of stop_times always finds its trip (matters for nothing
# today, but keeps the door open for foreign keys).
SELECT = {t: f"SELECT {c} FROM {t} ORDER BY {c.split(', ')[0]}" for t, c in TABLES.items()}
SELECT["stop_times"] = (
    f"SELECT {TABLES['stop_times']} FROM stop_times ORDER BY trip_id, stop_sequence"
)
SELECT["shapes"] = f"SELECT {TABLES['shapes']} FROM shapes ORDER BY shape_id, sequence"

LIST_ROUTES = f"SELECT {ROUTE_COLS} FROM routes ORDER BY route_id"
GET_ROUTE = f"SELECT {ROUTE_COLS} FROM routes WHERE route_id = ?"
DELETE_GTFS_ROUTES = "DELETE FROM routes WHERE source = 'gtfs'"
# A GTFS route takes over an operator's route of the same id: routes are one list.
UPSERT_ROUTE = (
    insert("routes", ROUTE_COLS)
    + " ON CONFLICT (route_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in ROUTE_COLS.split(", ")[1:])
)
ADD_ROUTE = insert("routes", ROUTE_COLS) + f" RETURNING {ROUTE_COLS}"
DELETE_ROUTE = "DELETE FROM routes WHERE route_id = ? AND source = 'operator'"
FEED_INFO = f"SELECT {FEED_COLS} FROM gtfs_feed WHERE id = 1"
PUT_FEED = f"INSERT INTO gtfs_feed (id, {FEED_COLS}) VALUES (1, ?, ?, ?, ?, ?, ?)"
RAISE_WATERMARK = (
    "INSERT INTO watermarks (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET"
    " value = CASE WHEN excluded.value > watermarks.value THEN excluded.value"
    " ELSE watermarks.value END RETURNING value"
)


def update_route(changes: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """An operator's route's ``UPDATE`` with ``changes`` (ROUTE_FIELDS); then bind the id."""
    names = [n for n in ROUTE_FIELDS if n in changes]
    sets = ", ".join(f"{n} = ?" for n in names) or "route_id = route_id"
    where = "WHERE route_id = ? AND source = 'operator'"
    sql = f"UPDATE routes SET {sets} {where} RETURNING {ROUTE_COLS}"
    return sql, [changes[n] for n in names]


def pg(sql: str) -> str:
    return numbered(sql)
