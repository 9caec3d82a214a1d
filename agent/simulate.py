"""Plausible bus routes as NMEA, made up on the spot (nothing downloaded).

A bus drives a closed loop of straight streets on a grid around ``center``:
it accelerates and brakes like a bus, slows for corners, waits at some red
lights and dwells 10-30 s at bus stops. The receiver side is simulated too:
a cold start with no fix, a position error that wanders slowly (GPS error is
correlated from one second to the next, not white), hdop and satellite counts
that drift, and altitude. Everything comes from ``random.Random(seed)``, so a
seed always gives the same file: tests and demos can rely on it.

The sentences are what a current u-blox (M8/M9/M10 in its default NMEA 4.11
mode) writes, so demos and end-to-end tests exercise the common receiver: GN
talkers, RMC with FAA mode ``A`` and the navigational status ``V`` ("not
provided", which must not read as invalid), GGA, and one GSA per constellation
(GPS and Galileo) ending in its NMEA 4.11 system id.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.nmea import KNOT_MS, sentence

_M_PER_DEG_LAT = 111_320.0
_ACCEL = 0.9  # m/s², a loaded city bus
_BRAKE = 1.1  # m/s², comfortable for standing passengers
_CORNER_SPEED = 4.0  # m/s through a 90° turn
_MAX_SPEED = 14.0  # m/s, about 50 km/h
_GEOID_SEP = 47.0  # metres; WGS-84 ellipsoid above the geoid, near Milan
# NMEA 4.11 GNSS system ids, the last field of GSA.
_GPS, _GALILEO = 1, 3


@dataclass(slots=True)
class _Stop:
    s: float  # distance along the loop, metres
    corner: bool  # a street corner (maybe with a light) rather than a bus stop


class _Route:
    """A closed polyline in local metres (x east, y north) with its stops."""

    def __init__(self, rng: random.Random) -> None:
        block = rng.uniform(180.0, 320.0)
        width, height = rng.randint(3, 7), rng.randint(2, 5)
        # A rectangle of blocks with a jog outwards on the bottom and top
        # sides, so the loop is not a plain box.
        a = rng.randint(1, width - 2)
        b = rng.randint(1, width - 2)
        grid = [(0, 0), (a, 0), (a, -1), (a + 1, -1), (a + 1, 0), (width, 0), (width, height)]
        grid += [(b + 1, height), (b + 1, height + 1), (b, height + 1), (b, height), (0, height)]
        angle = math.radians(rng.uniform(-30.0, 30.0))  # streets rarely run due north
        ox, oy = rng.uniform(-800.0, 800.0), rng.uniform(-800.0, 800.0)
        cos_a, sin_a = math.cos(angle), math.sin(angle)
        self.points = [
            (ox + block * (gx * cos_a - gy * sin_a), oy + block * (gx * sin_a + gy * cos_a))
            for gx, gy in grid
        ]
        self.points.append(self.points[0])
        self.starts = [0.0]
        for (x0, y0), (x1, y1) in zip(self.points, self.points[1:], strict=False):
            self.starts.append(self.starts[-1] + math.hypot(x1 - x0, y1 - y0))
        self.length = self.starts[-1]
        self.cruise = [rng.uniform(9.0, _MAX_SPEED) for _ in self.points[:-1]]
        stops = [_Stop(s, corner=True) for s in self.starts[1:]]
        s = rng.uniform(50.0, 200.0)
        while s < self.length - 100.0:
            if all(abs(s - c.s) > 40.0 for c in stops):
                stops.append(_Stop(s, corner=False))
            s += rng.uniform(250.0, 450.0)
        self.stops = sorted(stops, key=lambda stop: stop.s)

    def segment(self, s: float) -> int:
        s %= self.length
        for i in range(len(self.starts) - 1):
            if s < self.starts[i + 1]:
                return i
        return len(self.starts) - 2

    def locate(self, s: float) -> tuple[float, float, float]:
        """Position (x, y) and bearing (degrees true) at distance ``s``."""
        i = self.segment(s)
        (x0, y0), (x1, y1) = self.points[i], self.points[i + 1]
        frac = ((s % self.length) - self.starts[i]) / (self.starts[i + 1] - self.starts[i])
        bearing = math.degrees(math.atan2(x1 - x0, y1 - y0)) % 360.0
        return x0 + (x1 - x0) * frac, y0 + (y1 - y0) * frac, bearing


class _Bus:
    """Kinematics along the route: speed limits ahead become braking curves."""

    def __init__(self, route: _Route, rng: random.Random) -> None:
        self.route, self.rng = route, rng
        self.s = rng.uniform(0.0, route.length)  # the odometer, growing across laps
        self.v = 0.0
        self.dwell = 0.0
        self._lap = 0
        self._next = 0  # index of the next stop/corner ahead
        self._next_s = 0.0  # its odometer position
        self._limit = 0.0  # speed required there: 0 to halt, else a corner speed
        self._dwell_there = 0.0
        while self._next < len(route.stops) and route.stops[self._next].s <= self.s:
            self._next += 1
        self._arm()

    def _arm(self) -> None:
        if self._next >= len(self.route.stops):
            self._next, self._lap = 0, self._lap + 1
        stop = self.route.stops[self._next]
        self._next_s = stop.s + self._lap * self.route.length
        # Decide the light now, far enough ahead to brake for it.
        halt = not stop.corner or self.rng.random() < 0.25
        self._limit = 0.0 if halt else _CORNER_SPEED
        self._dwell_there = (
            self.rng.uniform(10.0, 30.0) if not stop.corner else self.rng.uniform(5.0, 25.0)
        )

    def step(self, h: float) -> None:
        if self.dwell > 0.0:
            self.dwell -= h
            return
        ahead = self._next_s - self.s
        cruise = self.route.cruise[self.route.segment(self.s)]
        allowed = min(cruise, math.sqrt(self._limit**2 + 2.0 * _BRAKE * max(ahead, 0.0)))
        if self.v < allowed:
            self.v = min(self.v + _ACCEL * h, allowed)
        else:
            self.v = allowed
        travel = self.v * h
        if travel >= ahead:
            self.s = self._next_s
            if self._limit == 0.0:
                self.v, self.dwell = 0.0, self._dwell_there
            self._next += 1
            self._arm()
        else:
            self.s += travel


class _Wander:
    """First-order Gauss-Markov noise: slowly wandering, like real GPS error."""

    def __init__(self, rng: random.Random, keep: float) -> None:
        self.rng, self.keep, self.value = rng, keep, 0.0

    def next(self, sigma: float) -> float:
        self.value = self.keep * self.value + sigma * math.sqrt(1.0 - self.keep**2) * (
            self.rng.gauss(0.0, 1.0)
        )
        return self.value


def route_nmea(
    seed: int,
    start: datetime,
    duration_s: int,
    *,
    center: tuple[float, float] = (45.4642, 9.19),
    rate_hz: float = 1.0,
    talker: str = "GN",
    cold_start_s: int = 0,
    gsv: bool = False,
) -> Iterator[str]:
    """NMEA lines (no line endings) for one bus: per epoch RMC, GGA and GSA.

    With the ``GN`` talker there are two GSAs (GPS, then Galileo), as a
    multi-GNSS u-blox sends them; with a single-system talker (``GP``) one.
    ``start`` must be timezone-aware; it is the first epoch's GPS time. The
    first ``cold_start_s`` seconds are "receiver talking, no fix yet". With
    ``gsv`` each epoch also lists the GPS satellites in view (GPGSV), which is
    what makes gpsd report SKY objects; it doubles the lines per epoch.
    """
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    if rate_hz <= 0 or duration_s < 0:
        raise ValueError("rate_hz must be > 0 and duration_s >= 0")
    rng = random.Random(seed)
    route = _Route(rng)
    bus = _Bus(route, rng)
    err_x, err_y, err_z = _Wander(rng, 0.95), _Wander(rng, 0.95), _Wander(rng, 0.97)
    hdop_drift = _Wander(rng, 0.99)
    prns = rng.sample(range(1, 33), 14)
    sky = [(p, rng.randint(10, 85), rng.randint(0, 359)) for p in prns]
    # A generator of its own, so that a seed drives the same bus as before
    # Galileo was added.
    galileo = random.Random(f"{seed}-galileo").sample(range(1, 37), 8)
    systems = (_GPS, _GALILEO) if talker == "GN" else (_GPS,)
    lat0, lon0 = center
    m_per_deg_lon = _M_PER_DEG_LAT * math.cos(math.radians(lat0))
    dt = 1.0 / rate_hz
    substeps = max(1, math.ceil(dt / 0.2))
    t0 = start.astimezone(UTC)
    for k in range(int(duration_s * rate_hz)):
        t = t0 + timedelta(seconds=k * dt)
        hhmmss = f"{t:%H%M%S}.{t.microsecond // 10_000:02d}"
        ddmmyy = f"{t:%d%m%y}"
        if k * dt < cold_start_s:
            yield from _no_fix(talker, hhmmss, ddmmyy, rng.randint(0, 3), systems)
            continue
        for _ in range(substeps):
            bus.step(dt / substeps)
        hdop = min(max(1.0 + hdop_drift.next(0.35), 0.6), 2.5)
        sats = min(max(round(17 - 4 * hdop + rng.gauss(0.0, 0.7)), 5), 20)
        x, y, bearing = route.locate(bus.s)
        x += err_x.next(1.2 * hdop)
        y += err_y.next(1.2 * hdop)
        alt = 120.0 + 6.0 * math.sin(2 * math.pi * (bus.s % route.length) / route.length)
        alt += err_z.next(2.0 * hdop)
        lat = _nmea_coord(lat0 + y / _M_PER_DEG_LAT, "NS", 2)
        lon = _nmea_coord(lon0 + x / m_per_deg_lon, "EW", 3)
        moving = bus.v > 0.3
        speed = max(bus.v + rng.gauss(0.0, 0.08), 0.0) if moving else 0.0
        # A still receiver reports an empty course rather than a random one.
        course = f"{bearing:.2f}" if moving else ""
        yield sentence(
            f"{talker}RMC,{hhmmss},A,{lat},{lon},{speed / KNOT_MS:.3f},{course},{ddmmyy},,,A,V"
        )
        yield sentence(
            f"{talker}GGA,{hhmmss},{lat},{lon},1,{sats:02d},{hdop:.2f},{alt:.1f},M,{_GEOID_SEP:.1f},M,,"
        )
        dops = f"{hdop * 1.6:.2f},{hdop:.2f},{hdop * 1.3:.2f}"
        # GSA lists at most 12 satellites; the rest of a multi-GNSS solution
        # is Galileo's.
        in_gps = min(12, sats - sats // 3) if len(systems) > 1 else min(sats, 12)
        used = {_GPS: prns[:in_gps], _GALILEO: galileo[: min(12, sats - in_gps)]}
        for system in systems:
            ids = ",".join(f"{p:02d}" for p in used[system])
            padding = "," * (12 - len(used[system]))
            yield sentence(f"{talker}GSA,A,3,{ids}{padding},{dops},{system}")
        if gsv:
            yield from _gsv([(p, e, a, rng.randint(25, 45)) for p, e, a in sky])


def write_route(path: str | Path, seed: int, start: datetime, duration_s: int, **kw: Any) -> Path:
    """Write :func:`route_nmea` to ``path`` with CRLF line endings, like a receiver."""
    path = Path(path)
    with path.open("w", encoding="ascii", newline="") as out:
        for line in route_nmea(seed, start, duration_s, **kw):
            out.write(line + "\r\n")
    return path


def _no_fix(
    talker: str, hhmmss: str, ddmmyy: str, sats: int, systems: tuple[int, ...]
) -> Iterator[str]:
    yield sentence(f"{talker}RMC,{hhmmss},V,,,,,,,{ddmmyy},,,N,V")
    yield sentence(f"{talker}GGA,{hhmmss},,,,,0,{sats:02d},99.99,,,,,,")
    for system in systems:
        yield sentence(f"{talker}GSA,A,1,,,,,,,,,,,,,99.99,99.99,99.99,{system}")


def _gsv(view: list[tuple[int, int, int, int]]) -> Iterator[str]:
    """Satellites in view, four per sentence: (prn, elevation, azimuth, snr).

    NMEA 4.11 ends each GSV with its signal id: 1 is GPS L1 C/A.
    """
    count = (len(view) + 3) // 4
    for i in range(count):
        sats = "".join(
            f",{p:02d},{e:02d},{a:03d},{snr:02d}" for p, e, a, snr in view[4 * i : 4 * i + 4]
        )
        yield sentence(f"GPGSV,{count},{i + 1},{len(view):02d}{sats},1")


def _nmea_coord(deg: float, signs: str, width: int) -> str:
    """Signed degrees to ``ddmm.mmmmm,H`` (or ``dddmm.mmmmm,H``)."""
    hemi = signs[0] if deg >= 0 else signs[1]
    whole = int(abs(deg))
    minutes = round((abs(deg) - whole) * 60.0, 5)
    if minutes >= 60.0:  # rounding carried into the next degree
        whole, minutes = whole + 1, minutes - 60.0
    return f"{whole:0{width}d}{minutes:08.5f},{hemi}"
