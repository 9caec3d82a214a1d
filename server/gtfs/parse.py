"""Reading an agency's GTFS zip into a checked ``Feed``; every problem names file, line, field.

Nothing is returned unless the whole feed is sound: a caller either gets a
``Feed`` to store or a ``GtfsError`` listing what is wrong, so a broken feed
can never be half-loaded. Only what bustracker uses is read (routes, trips,
stops, stop times, calendars, shapes, the agency's time zone); other files
(fares, transfers, frequencies) are ignored.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import IO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from server.gtfs.model import (
    Calendar,
    CalendarDate,
    Feed,
    Route,
    ShapePoint,
    Stop,
    StopTime,
    Trip,
)
from server.vehicle import distance_m

MAX_PROBLEMS = 50
# Where a trip's service_id must be defined (the name problems give it).
_SERVICES = "calendar.txt or calendar_dates.txt"
_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_REQUIRED_FILES = ("agency.txt", "stops.txt", "routes.txt", "trips.txt", "stop_times.txt")
_COLUMNS = {
    "agency.txt": ("agency_name", "agency_url", "agency_timezone"),
    "stops.txt": ("stop_id",),
    "routes.txt": ("route_id", "route_type"),
    "trips.txt": ("route_id", "service_id", "trip_id"),
    "stop_times.txt": ("trip_id", "stop_id", "stop_sequence"),
    "calendar.txt": ("service_id", *_DAYS, "start_date", "end_date"),
    "calendar_dates.txt": ("service_id", "date", "exception_type"),
    "shapes.txt": ("shape_id", "shape_pt_lat", "shape_pt_lon", "shape_pt_sequence"),
}
_TIME = re.compile(r"^(\d{1,3}):([0-5]\d):([0-5]\d)$")
_DATE = re.compile(r"^\d{8}$")
_COLOR = re.compile(r"^[0-9A-Fa-f]{6}$")


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int | None  # 1 is the header line; None for the file as a whole
    field: str | None
    message: str

    def __str__(self) -> str:
        where = self.file + (f" line {self.line}" if self.line else "")
        return f"{where}" + (f", field {self.field}" if self.field else "") + f": {self.message}"


class GtfsError(Exception):
    """The feed is refused; ``problems`` says where and why (at most MAX_PROBLEMS)."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


class _Stop(Exception):
    """Too many problems to go on."""


class _Checker:
    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        # Every id a file names, even on a row refused for another field: a bad
        # date in calendar.txt must not also make every trip of that service "unknown".
        self.known: dict[str, set[str]] = {}
        # Files that could not be read at all; nothing is checked against them.
        self.broken: set[str] = set()

    def refers(self, file: str, line: int, field: str, value: str, target: str) -> bool:
        if target in self.broken or value in self.known.get(target, ()):
            return target not in self.broken
        self.add(file, line, field, f"no such {field} in {target}: {value!r}")
        return False

    def add(self, file: str, line: int | None, field: str | None, message: str) -> None:
        self.problems.append(Problem(file, line, field, message))
        if len(self.problems) >= MAX_PROBLEMS:
            raise _Stop


Row = tuple[int, dict[str, str]]


class _Reader:
    """The zip's text files as rows of stripped values, each with its line number."""

    def __init__(self, archive: zipfile.ZipFile, check: _Checker) -> None:
        self._check = check
        # Agencies often zip a folder: take files by their base name.
        self._names = {Path(n).name: n for n in archive.namelist() if not n.endswith("/")}
        self._archive = archive

    def has(self, file: str) -> bool:
        return file in self._names

    def rows(self, file: str) -> Iterator[Row]:
        raw = self._archive.read(self._names[file])
        text = self._decode(file, raw)
        if text is None:
            return
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader, None)
        if header is None:
            self._check.add(file, None, None, "the file is empty")
            return
        columns = [h.strip() for h in header]
        missing = [c for c in _COLUMNS.get(file, ()) if c not in columns]
        for column in missing:
            self._check.add(file, 1, column, "required column missing")
        if missing:
            self._check.broken.add(file)
            return
        for values in reader:
            line = reader.line_num
            if not any(v.strip() for v in values):
                continue  # blank lines are allowed
            if len(values) > len(columns):
                self._check.add(file, line, None, "more values than columns")
                continue
            yield line, {c: (values[i].strip() if i < len(values) else "")
                         for i, c in enumerate(columns)}  # fmt: skip

    def _decode(self, file: str, raw: bytes) -> str | None:
        bad = False
        for number, line in enumerate(raw.split(b"\n"), start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                self._check.add(file, number, None, f"not UTF-8 (byte {exc.start + 1})")
                bad = True
                continue
            if b"\x00" in line:
                self._check.add(file, number, None, "contains a NUL character")
                bad = True
        if bad:
            self._check.broken.add(file)
            return None
        return raw.decode("utf-8-sig")


def _float(check: _Checker, file: str, line: int, row: dict[str, str], name: str,
           lo: float, hi: float) -> float | None:  # fmt: skip
    value = row.get(name, "")
    try:
        number = float(value)
    except ValueError:
        check.add(file, line, name, f"not a number: {value!r}")
        return None
    if not lo <= number <= hi:
        check.add(file, line, name, f"{number} is out of range [{lo}, {hi}]")
        return None
    return number


def _int(check: _Checker, file: str, line: int, row: dict[str, str], name: str) -> int | None:
    value = row.get(name, "")
    if not re.fullmatch(r"-?\d+", value):
        check.add(file, line, name, f"not a whole number: {value!r}")
        return None
    return int(value)


def _date(check: _Checker, file: str, line: int, row: dict[str, str], name: str) -> date | None:
    value = row.get(name, "")
    if _DATE.match(value):
        try:
            return date(int(value[:4]), int(value[4:6]), int(value[6:]))
        except ValueError:
            pass
    check.add(file, line, name, f"not a date as YYYYMMDD: {value!r}")
    return None


def _time(check: _Checker, line: int, row: dict[str, str], name: str) -> int | None:
    value = row.get(name, "")
    if not value:
        return None
    match = _TIME.match(value)
    if match is None:
        check.add("stop_times.txt", line, name, f"not a time as HH:MM:SS: {value!r}")
        return None
    h, m, s = (int(g) for g in match.groups())
    return h * 3600 + m * 60 + s


def _color(check: _Checker, line: int, row: dict[str, str], name: str) -> str | None:
    value = row.get(name, "")
    if not value:
        return None
    if not _COLOR.match(value):
        check.add("routes.txt", line, name, f"not a colour as six hex digits: {value!r}")
        return None
    return value.upper()


def _unique(check: _Checker, file: str, line: int, field: str, value: str,
            seen: dict[str, int]) -> bool:  # fmt: skip
    check.known.setdefault(file, set()).add(value)
    if not value:
        check.add(file, line, field, "required value missing")
        return False
    if value in seen:
        check.add(file, line, field, f"duplicate {field} {value!r} (first on line {seen[value]})")
        return False
    seen[value] = line
    return True


def parse_feed(source: Path | IO[bytes]) -> Feed:
    """The feed in the zip ``source``; raise GtfsError naming every problem found."""
    check = _Checker()
    try:
        try:
            archive = zipfile.ZipFile(source)
        except (zipfile.BadZipFile, OSError) as exc:
            raise GtfsError([Problem(str(source), None, None, f"not a zip file: {exc}")]) from None
        with archive:
            feed = _parse(_Reader(archive, check), check)
    except _Stop:
        feed = None
    if check.problems or feed is None:
        raise GtfsError(check.problems)
    return replace(feed, warnings=tuple(str(w) for w in check.warnings))


def _parse(reader: _Reader, check: _Checker) -> Feed | None:
    for file in _REQUIRED_FILES:
        if not reader.has(file):
            check.add(file, None, None, "required file missing")
    if not (reader.has("calendar.txt") or reader.has("calendar_dates.txt")):
        check.add("calendar.txt", None, None, "calendar.txt or calendar_dates.txt is required")
    if check.problems:
        return None
    timezone = _agency_timezone(reader, check)
    stops = _stops(reader, check)
    routes = _routes(reader, check)
    calendars, dates = _calendars(reader, check)
    shapes = _shapes(reader, check)
    if check.broken & {"calendar.txt", "calendar_dates.txt"}:
        check.broken.add(_SERVICES)
    trips = _trips(reader, check)
    stop_times = _stop_times(reader, check)
    _close_stops(stops, check)
    if check.problems:
        return None
    return Feed(
        timezone=timezone,
        routes=tuple(routes),
        stops=tuple(stops),
        trips=tuple(trips),
        stop_times=tuple(stop_times),
        calendars=tuple(calendars),
        calendar_dates=tuple(dates),
        shape_points=tuple(shapes),
    )


def _agency_timezone(reader: _Reader, check: _Checker) -> str:
    zones = []
    for line, row in reader.rows("agency.txt"):
        zone = row["agency_timezone"]
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            check.add("agency.txt", line, "agency_timezone", f"unknown time zone {zone!r}")
            continue
        zones.append((line, zone))
    if zones and any(z != zones[0][1] for _, z in zones):
        line, zone = next((ln, z) for ln, z in zones if z != zones[0][1])
        check.add("agency.txt", line, "agency_timezone", f"{zone!r} differs from {zones[0][1]!r}")
    if not zones and not check.problems:
        check.add("agency.txt", None, None, "no agency")
    return zones[0][1] if zones else "UTC"


def _stops(reader: _Reader, check: _Checker) -> list[Stop]:
    seen: dict[str, int] = {}
    stops = []
    for line, row in reader.rows("stops.txt"):
        if not _unique(check, "stops.txt", line, "stop_id", row["stop_id"], seen):
            continue
        if row.get("location_type", "") in ("3", "4"):
            continue  # generic nodes and boarding areas: no place of their own for riders
        lat = _float(check, "stops.txt", line, row, "stop_lat", -90, 90)
        lon = _float(check, "stops.txt", line, row, "stop_lon", -180, 180)
        if lat is not None and lon is not None:
            stops.append(Stop(row["stop_id"], row.get("stop_name", ""), lat, lon))
    return stops


def _routes(reader: _Reader, check: _Checker) -> list[Route]:
    seen: dict[str, int] = {}
    routes = []
    for line, row in reader.rows("routes.txt"):
        if not _unique(check, "routes.txt", line, "route_id", row["route_id"], seen):
            continue
        route_type = _int(check, "routes.txt", line, row, "route_type")
        short, long = row.get("route_short_name") or None, row.get("route_long_name") or None
        if short is None and long is None:
            check.add(
                "routes.txt",
                line,
                "route_short_name",
                "route_short_name or route_long_name is required",
            )
        color = _color(check, line, row, "route_color")
        text_color = _color(check, line, row, "route_text_color")
        if route_type is not None:
            routes.append(Route(row["route_id"], short, long, route_type, color, text_color,
                                row.get("agency_id") or None))  # fmt: skip
    return routes


def _calendars(reader: _Reader, check: _Checker) -> tuple[list[Calendar], list[CalendarDate]]:
    calendars: list[Calendar] = []
    dates: list[CalendarDate] = []
    if reader.has("calendar.txt"):
        seen: dict[str, int] = {}
        for line, row in reader.rows("calendar.txt"):
            check.known.setdefault(_SERVICES, set()).add(row["service_id"])
            if not _unique(check, "calendar.txt", line, "service_id", row["service_id"], seen):
                continue
            bad_days = [d for d in _DAYS if row[d] not in ("0", "1")]
            for day in bad_days:
                check.add("calendar.txt", line, day, f"not 0 or 1: {row[day]!r}")
            start = _date(check, "calendar.txt", line, row, "start_date")
            end = _date(check, "calendar.txt", line, row, "end_date")
            if start and end and not bad_days:
                if end < start:
                    check.add("calendar.txt", line, "end_date", "before start_date")
                weekdays = "".join(row[d] for d in _DAYS)
                calendars.append(Calendar(row["service_id"], weekdays, start, end))
    if reader.has("calendar_dates.txt"):
        pairs: dict[str, int] = {}
        for line, row in reader.rows("calendar_dates.txt"):
            check.known.setdefault(_SERVICES, set()).add(row["service_id"])
            on = _date(check, "calendar_dates.txt", line, row, "date")
            kind = row["exception_type"]
            if kind not in ("1", "2"):
                check.add("calendar_dates.txt", line, "exception_type", f"not 1 or 2: {kind!r}")
            if on is None or kind not in ("1", "2"):
                continue
            key = f"{row['service_id']} on {on:%Y%m%d}"
            if _unique(check, "calendar_dates.txt", line, "service_id and date", key, pairs):
                dates.append(CalendarDate(row["service_id"], on, int(kind)))
    return calendars, dates


def _shapes(reader: _Reader, check: _Checker) -> list[ShapePoint]:
    if not reader.has("shapes.txt"):
        return []
    points = []
    seen: dict[str, int] = {}
    for line, row in reader.rows("shapes.txt"):
        check.known.setdefault("shapes.txt", set()).add(row["shape_id"])
        lat = _float(check, "shapes.txt", line, row, "shape_pt_lat", -90, 90)
        lon = _float(check, "shapes.txt", line, row, "shape_pt_lon", -180, 180)
        seq = _int(check, "shapes.txt", line, row, "shape_pt_sequence")
        if lat is None or lon is None or seq is None:
            continue
        if seq < 0:
            check.add("shapes.txt", line, "shape_pt_sequence", f"negative: {seq}")
            continue
        key = f"{row['shape_id']} #{seq}"
        if _unique(check, "shapes.txt", line, "shape_id and shape_pt_sequence", key, seen):
            points.append(ShapePoint(row["shape_id"], seq, lat, lon))
    return points


def _trips(reader: _Reader, check: _Checker) -> list[Trip]:
    seen: dict[str, int] = {}
    trips = []
    for line, row in reader.rows("trips.txt"):
        if not _unique(check, "trips.txt", line, "trip_id", row["trip_id"], seen):
            continue
        ok = check.refers("trips.txt", line, "route_id", row["route_id"], "routes.txt")
        service = row["service_id"]
        if not check.refers("trips.txt", line, "service_id", service, _SERVICES):
            ok = False
        shape = row.get("shape_id") or None
        if shape is not None and not check.refers(
            "trips.txt", line, "shape_id", shape, "shapes.txt"
        ):
            ok = False
        direction = row.get("direction_id") or None
        if direction not in (None, "0", "1"):
            check.add("trips.txt", line, "direction_id", f"not 0 or 1: {direction!r}")
            ok = False
        if ok:
            trips.append(Trip(row["trip_id"], row["route_id"], row["service_id"], shape,
                              row.get("block_id") or None, row.get("trip_headsign") or None,
                              None if direction is None else int(direction)))  # fmt: skip
    return trips


def _stop_times(reader: _Reader, check: _Checker) -> list[StopTime]:
    by_trip: dict[str, list[tuple[int, StopTime]]] = {}
    for line, row in reader.rows("stop_times.txt"):
        trip, stop = row["trip_id"], row["stop_id"]
        known_trip = check.refers("stop_times.txt", line, "trip_id", trip, "trips.txt")
        if not check.refers("stop_times.txt", line, "stop_id", stop, "stops.txt") or not known_trip:
            continue
        seq = _int(check, "stop_times.txt", line, row, "stop_sequence")
        if seq is None:
            continue
        if seq < 0:
            check.add("stop_times.txt", line, "stop_sequence",
                      f"negative stop_sequence {seq} in trip {trip!r}")  # fmt: skip
            continue
        arrival = _time(check, line, row, "arrival_time")
        departure = _time(check, line, row, "departure_time")
        if (arrival is None) != (departure is None):
            # transitfeed's rule too: a stop is timed by both or by neither.
            given, absent = (
                ("arrival_time", "departure_time")
                if departure is None
                else ("departure_time", "arrival_time")
            )
            if row.get(absent, "") == "":  # else its bad value was reported above
                check.add("stop_times.txt", line, absent,
                          f"{given} without {absent} in trip {trip!r}")  # fmt: skip
            continue
        by_trip.setdefault(trip, []).append((line, StopTime(trip, seq, stop, arrival, departure)))
    out: list[StopTime] = []
    for trip, entries in by_trip.items():
        seen: dict[int, int] = {}
        for line, st in entries:
            if st.stop_sequence in seen:
                check.add("stop_times.txt", line, "stop_sequence",
                          f"duplicate stop_sequence {st.stop_sequence} in trip {trip!r}"
                          f" (first on line {seen[st.stop_sequence]})")  # fmt: skip
            seen[st.stop_sequence] = line
        ordered = sorted(entries, key=lambda e: e[1].stop_sequence)
        for line, st in (ordered[0], ordered[-1]):
            if st.arrival_s is None:
                check.add("stop_times.txt", line, "arrival_time",
                          f"the first and last stop of trip {trip!r} need times")  # fmt: skip
        out.extend(st for _, st in ordered)
    return out


CLOSE_M = 2.0


def _close_stops(stops: list[Stop], check: _Checker) -> None:
    """Warn of stops at one place under two ids (transitfeed's "stops too close").

    Not refused: GTFS allows it, and it is how some agencies model two platforms.
    Cells of about 11 m keep this linear in the number of stops.
    """
    cells: dict[tuple[int, int], list[Stop]] = {}
    for stop in stops:
        cells.setdefault((round(stop.lat * 1e4), round(stop.lon * 1e4)), []).append(stop)
    for (y, x), members in cells.items():
        for stop in members:
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    for other in cells.get((y + dy, x + dx), ()):
                        if other.stop_id <= stop.stop_id:
                            continue
                        if distance_m(stop.lat, stop.lon, other.lat, other.lon) < CLOSE_M:
                            pair = f"{stop.stop_id!r} and {other.stop_id!r}"
                            message = f"stops {pair} are at one place"
                            check.warnings.append(Problem("stops.txt", None, "stop_id", message))
