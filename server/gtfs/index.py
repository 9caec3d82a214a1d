"""A static feed arranged for reads: stops near a point, a route's stops and shapes, trips.

Built once per imported feed version (``server/transit.py`` keeps it) and then
only read. No I/O.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from server.gtfs.model import Feed, Stop, Trip
from server.vehicle import distance_m

LatLon = tuple[float, float]


@dataclass(frozen=True, slots=True)
class TripStart:
    """When a trip of one service day starts, as GTFS-Realtime's TripDescriptor gives it."""

    start_date: str  # YYYYMMDD, the service day
    start_time: str  # HH:MM:SS after that day's noon minus 12 h (may pass 24:00:00)


class FeedIndex:
    def __init__(self, feed: Feed, version: str) -> None:
        self.version = version
        self.timezone = feed.timezone
        self.stops: dict[str, Stop] = {s.stop_id: s for s in feed.stops}
        self.trips: dict[str, Trip] = {t.trip_id: t for t in feed.trips}
        self.route_ids = {r.route_id for r in feed.routes}
        shapes: dict[str, list[tuple[int, LatLon]]] = defaultdict(list)
        for p in feed.shape_points:
            shapes[p.shape_id].append((p.sequence, (p.lat, p.lon)))
        self.shapes: dict[str, list[LatLon]] = {
            k: [pt for _, pt in sorted(v)] for k, v in shapes.items()
        }
        self.first_departure: dict[str, int] = {}
        self.last_arrival: dict[str, int] = {}
        route_stops: dict[str, dict[str, None]] = defaultdict(dict)  # ordered sets
        stop_routes: dict[str, dict[str, None]] = defaultdict(dict)
        trip_stops: dict[str, list[str]] = defaultdict(list)
        for st in feed.stop_times:  # ordered by trip, then stop_sequence
            trip = self.trips[st.trip_id]
            trip_stops[st.trip_id].append(st.stop_id)
            # GTFS-RT's start_time is the first stop's arrival_time (validator rule E023).
            if st.trip_id not in self.first_departure and st.arrival_s is not None:
                self.first_departure[st.trip_id] = st.arrival_s
            if st.arrival_s is not None:
                self.last_arrival[st.trip_id] = st.arrival_s
            route_stops[trip.route_id][st.stop_id] = None
            stop_routes[st.stop_id][trip.route_id] = None
        self.route_stops = {r: list(s) for r, s in route_stops.items()}
        self.stop_routes = {s: sorted(r) for s, r in stop_routes.items()}
        route_shapes: dict[str, dict[str, None]] = defaultdict(dict)
        for trip in feed.trips:
            if trip.shape_id:
                route_shapes[trip.route_id][trip.shape_id] = None
        self.route_shape_ids = {r: list(s) for r, s in route_shapes.items()}
        # Each shape's stops in order, from its trip with the most stops (server/arrivals.py).
        self.shape_stops: dict[str, list[str]] = {}
        for trip in feed.trips:
            stops = trip_stops.get(trip.trip_id, [])
            if trip.shape_id and len(stops) > len(self.shape_stops.get(trip.shape_id, ())):
                self.shape_stops[trip.shape_id] = stops
        self._weekdays = {c.service_id: c for c in feed.calendars}
        self._exceptions = {(d.service_id, d.date): d.exception_type for d in feed.calendar_dates}
        points = [(s.lat, s.lon) for s in feed.stops]
        points += [pt for shape in self.shapes.values() for pt in shape]
        self.bounds = (
            (min(p[0] for p in points), min(p[1] for p in points),
             max(p[0] for p in points), max(p[1] for p in points))
            if points else None
        )  # fmt: skip

    # -- riders' reads ---------------------------------------------------------------------

    def near(self, lat: float, lon: float, limit: int) -> list[tuple[float, Stop]]:
        """The ``limit`` stops nearest (lat, lon), nearest first, with their distance."""
        ranked = sorted(
            ((distance_m(lat, lon, s.lat, s.lon), s) for s in self.stops.values()),
            key=lambda item: (item[0], item[1].stop_id),
        )
        return ranked[:limit]

    def route_shapes(self, route_id: str) -> list[list[LatLon]]:
        return [self.shapes[s] for s in self.route_shape_ids.get(route_id, ())]

    def stops_of_route(self, route_id: str) -> list[Stop]:
        return [self.stops[s] for s in self.route_stops.get(route_id, ())]

    # -- service days and trips --------------------------------------------------------------

    def runs_on(self, service_id: str, day: date) -> bool:
        exception = self._exceptions.get((service_id, day))
        if exception is not None:
            return exception == 1
        cal = self._weekdays.get(service_id)
        return (
            cal is not None
            and cal.start_date <= day <= cal.end_date
            and (cal.weekdays[day.weekday()] == "1")
        )

    def trip_start(self, trip_id: str, at: datetime) -> TripStart | None:
        """The run of ``trip_id`` under way at ``at``: the service day it started on.

        A trip may start on the previous service day and run past midnight
        (times over 24:00:00), so yesterday is tried too. A run fits when ``at``
        is within an hour of its scheduled span, on a day its service runs.
        """
        trip = self.trips.get(trip_id)
        first = self.first_departure.get(trip_id)
        if trip is None or first is None:
            return None
        last = self.last_arrival.get(trip_id, first)
        local = at.astimezone(ZoneInfo(self.timezone))
        slack = timedelta(hours=1)  # a bus on its way to the first stop, or running late
        for back in (0, 1):
            day = local.date() - timedelta(days=back)
            if not self.runs_on(trip.service_id, day):
                continue
            # GTFS times count from noon minus 12 h, which is midnight except on DST days.
            noon = datetime(day.year, day.month, day.day, 12, tzinfo=local.tzinfo)
            base = noon - timedelta(hours=12)
            if (
                base + timedelta(seconds=first) - slack
                <= local
                <= base + timedelta(seconds=last) + slack
            ):
                hours, rest = divmod(first, 3600)
                return TripStart(f"{day:%Y%m%d}", f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}")
        return None
