"""Trip statistics of a track: distance, moving and stopped time, top speed, stops. No I/O.

The console's device detail shows these next to the replay; they are computed
here, on the server, so the numbers are the same for every client and are
checked against known tracks (``tests/server/test_trips.py``).

How a track is read, segment by segment (one segment = two consecutive fixes):

- A segment longer than ``max_gap_s`` is a **gap** (the unit was off or out of
  coverage): its time is neither moving nor stopped and its distance is not
  counted, because nobody knows the road the bus took.
- A segment whose implied speed exceeds ``max_plausible_ms`` is a **jump** (a
  GPS glitch): like a gap, neither its distance nor its time is counted.
- Otherwise a segment is **moving** when the bus covered ground at
  ``moving_ms`` or faster, else **stopped**. Reported speeds are not used for
  this: a receiver's speed at rest wanders around 0.3 to 1 m/s.
- A **stop** is a run of stopped segments lasting at least ``min_stop_s``
  (a bus at a stop or a light); shorter pauses count as stopped time only.
- **Max speed** is the highest reported speed, or the highest segment speed
  where the track carries no speeds.

Traccar's trip report uses one speed threshold and a minimal parking time the
same way (its defaults, 0.01 kn and 300 s, are for cars parked for hours; a bus
stop takes 20 to 60 s, hence our 30 s).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from server.model import FixIn
from server.vehicle import distance_m, iso

MOVING_MS = 1.0  # 3.6 km/h: walking pace separates a crawling bus from a parked one
MIN_STOP_S = 30.0
MAX_GAP_S = 300.0
MAX_PLAUSIBLE_MS = 70.0  # 252 km/h: no bus; a jump this fast is the receiver's


@dataclass(frozen=True, slots=True)
class Stop:
    start: datetime
    end: datetime
    lat: float
    lon: float

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True, slots=True)
class TripStats:
    fixes: int
    distance_m: float
    moving_s: float
    stopped_s: float
    gap_s: float
    max_speed_ms: float | None
    stops: list[Stop] = field(default_factory=list)
    start: datetime | None = None
    end: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        moving = self.moving_s
        return {
            "fixes": self.fixes,
            "from": iso(self.start) if self.start else None,
            "to": iso(self.end) if self.end else None,
            "distance_m": round(self.distance_m, 1),
            "moving_s": round(moving, 1),
            "stopped_s": round(self.stopped_s, 1),
            "gap_s": round(self.gap_s, 1),
            "max_speed_ms": None if self.max_speed_ms is None else round(self.max_speed_ms, 2),
            "avg_moving_speed_ms": round(self.distance_m / moving, 2) if moving > 0 else None,
            "stops": [
                {
                    "from": iso(s.start),
                    "to": iso(s.end),
                    "duration_s": round(s.duration_s, 1),
                    "lat": s.lat,
                    "lon": s.lon,
                }
                for s in self.stops
            ],
        }


def trip_stats(
    fixes: list[FixIn],
    *,
    moving_ms: float = MOVING_MS,
    min_stop_s: float = MIN_STOP_S,
    max_gap_s: float = MAX_GAP_S,
    max_plausible_ms: float = MAX_PLAUSIBLE_MS,
) -> TripStats:
    """The statistics of ``fixes`` (any order; sorted by time here)."""
    track = sorted(fixes, key=lambda f: f.t)
    distance = moving = stopped = gap = 0.0
    top_segment: float | None = None
    stops: list[Stop] = []
    run_start: FixIn | None = None  # first fix of the current run of stopped segments
    run_end: FixIn | None = None

    def close_run() -> None:
        nonlocal run_start, run_end
        if (
            run_start is not None
            and run_end is not None
            and (run_end.t - run_start.t).total_seconds() >= min_stop_s
        ):
            stops.append(Stop(run_start.t, run_end.t, run_start.lat, run_start.lon))
        run_start = run_end = None

    for a, b in itertools.pairwise(track):
        dt = (b.t - a.t).total_seconds()
        if dt <= 0:
            continue  # a duplicate time: nothing elapsed
        d = distance_m(a.lat, a.lon, b.lat, b.lon)
        speed = d / dt
        if dt > max_gap_s or speed > max_plausible_ms:
            gap += dt
            close_run()
            continue
        distance += d
        top_segment = speed if top_segment is None else max(top_segment, speed)
        if speed >= moving_ms:
            moving += dt
            close_run()
        else:
            stopped += dt
            if run_start is None:
                run_start = a
            run_end = b
    close_run()
    reported = [f.speed for f in track if f.speed is not None]
    top = max(reported) if reported else top_segment
    return TripStats(
        fixes=len(track),
        distance_m=distance,
        moving_s=moving,
        stopped_s=stopped,
        gap_s=gap,
        max_speed_ms=top,
        stops=stops,
        start=track[0].t if track else None,
        end=track[-1].t if track else None,
    )
