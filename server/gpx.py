"""A vehicle's track as GPX 1.1, for the tools operators open tracks in. No I/O.

Google Earth, QGIS, JOSM and Traccar's own exports read GPX. Every fix of the
period is a track point, unsimplified (an export is for looking closely):
position, time, altitude when the receiver gave one, and the receiver's own
quality figures (``hdop``, ``sat``). GPX 1.1 has no speed or heading for a
track point; the JSON track carries those. Written with gpxpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import gpxpy.gpx

from server.model import FixIn


def track_gpx(name: str, fixes: Sequence[FixIn], start: datetime, end: datetime) -> str:
    """One track named after the vehicle, one segment of ``fixes`` (in time order)."""
    gpx = gpxpy.gpx.GPX()
    gpx.creator = "bustracker"
    gpx.name = name
    gpx.description = f"{name}, {start.isoformat()} to {end.isoformat()}"
    gpx.time = start
    track = gpxpy.gpx.GPXTrack(name=name)
    segment = gpxpy.gpx.GPXTrackSegment()
    for fix in fixes:
        point = gpxpy.gpx.GPXTrackPoint(fix.lat, fix.lon, elevation=fix.alt, time=fix.t)
        point.horizontal_dilution = fix.hdop
        point.satellites = fix.sats
        segment.points.append(point)
    track.segments.append(segment)
    gpx.tracks.append(track)
    return gpx.to_xml(version="1.1")


def export_filename(name: str, start: datetime) -> str:
    """``bus-12_2026-12-02T0800Z.gpx``: the vehicle and the period's start, safe anywhere."""
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in name).strip("-") or "track"
    return f"{safe}_{start.astimezone(UTC).strftime('%Y-%m-%dT%H%MZ')}.gpx"
