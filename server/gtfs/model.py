"""The records of a static GTFS feed that bustracker keeps. No I/O here.

Times of day are seconds after midnight of the service day (GTFS allows more
than 24 h: a trip running past midnight belongs to the day it started).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Literal

RouteSource = Literal["gtfs", "operator"]


@dataclass(frozen=True, slots=True)
class Route:
    route_id: str
    short_name: str | None = None
    long_name: str | None = None
    type: int = 3  # GTFS route_type; 3 is bus
    color: str | None = None  # six hex digits, no '#'
    text_color: str | None = None
    agency_id: str | None = None
    source: RouteSource = "gtfs"


@dataclass(frozen=True, slots=True)
class Stop:
    stop_id: str
    name: str
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class Trip:
    trip_id: str
    route_id: str
    service_id: str
    shape_id: str | None = None
    block_id: str | None = None
    headsign: str | None = None
    direction_id: int | None = None


@dataclass(frozen=True, slots=True)
class StopTime:
    trip_id: str
    stop_sequence: int
    stop_id: str
    arrival_s: int | None = None
    departure_s: int | None = None


@dataclass(frozen=True, slots=True)
class Calendar:
    service_id: str
    weekdays: str  # seven '0'/'1', Monday first
    start_date: date
    end_date: date


@dataclass(frozen=True, slots=True)
class CalendarDate:
    service_id: str
    date: date
    exception_type: int  # 1 added, 2 removed


@dataclass(frozen=True, slots=True)
class ShapePoint:
    shape_id: str
    sequence: int
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class Feed:
    """One agency's static feed, complete and consistent (``parse`` checked it)."""

    timezone: str
    routes: tuple[Route, ...] = ()
    stops: tuple[Stop, ...] = ()
    trips: tuple[Trip, ...] = ()
    stop_times: tuple[StopTime, ...] = ()
    calendars: tuple[Calendar, ...] = ()
    calendar_dates: tuple[CalendarDate, ...] = ()
    shape_points: tuple[ShapePoint, ...] = ()
    # What the import should tell the operator but does not refuse (``parse``).
    warnings: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True, slots=True)
class FeedInfo:
    """The feed in the store now: its version (content hash) and when it was imported."""

    version: str
    timezone: str
    imported_at: float  # epoch seconds
    routes: int
    trips: int
    stops: int


def gtfs_time(seconds: int) -> str:
    """Seconds after midnight as GTFS writes them (``25:10:00`` past midnight)."""
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
