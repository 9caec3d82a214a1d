"""GET /v1/vehicles/{id}/track.gpx over real HTTP, read back by gpxpy and as plain XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import gpxpy
import httpx

from tests.server.running import RunningServer
from tests.server.test_tracks import get, iso, round_the_block, store_fixes

GPX_11 = "{http://www.topografix.com/GPX/1/1}"


def test_a_track_exports_as_gpx_with_every_fix(any_server: RunningServer) -> None:
    device, _ = any_server.add_device("bus 12/a")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    # 3,000 fixes: more than the JSON track draws (2,000), all of them exported.
    fixes = round_the_block(start, 3000, alt=lambda i: 120.5 if i % 2 else None, hdop=0.9, sats=9)
    store_fixes(any_server, device.id, fixes)
    period = {"from": iso(start), "to": iso(start + timedelta(hours=1))}
    r = get(any_server, f"/v1/vehicles/{device.id}/track.gpx", **period)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/gpx+xml")
    stamp = start.strftime("%Y-%m-%dT%H%MZ")
    assert r.headers["content-disposition"] == f'attachment; filename="bus-12-a_{stamp}.gpx"'
    # GPX 1.1, as the schema's namespace says.
    root = ET.fromstring(r.content)
    assert root.tag == f"{GPX_11}gpx" and root.get("version") == "1.1"
    gpx = gpxpy.parse(r.text)
    (track,) = gpx.tracks
    (segment,) = track.segments
    assert track.name == "bus 12/a" and gpx.creator == "bustracker"
    assert len(segment.points) == 3000
    for point, fix in zip(segment.points, fixes, strict=True):
        assert (point.latitude, point.longitude, point.time) == (fix.lat, fix.lon, fix.t)
        assert point.elevation == fix.alt
        assert (point.horizontal_dilution, point.satellites) == (0.9, 9)


def test_an_export_is_refused_in_words(server: RunningServer) -> None:
    device, _ = server.add_device("bus-13")
    path = f"/v1/vehicles/{device.id}/track.gpx"
    now = datetime.now(UTC)
    two_days = {"from": iso(now - timedelta(days=2)), "to": iso(now)}
    r = get(server, path, **two_days)
    assert (r.status_code, r.json()) == (422, {"error": "from/to: at most 1 day per request"})
    r = get(server, path, **{"from": "yesterday"})
    assert r.status_code == 422 and r.json()["error"].startswith("from: ")
    r = get(server, "/v1/vehicles/999999/track.gpx")
    assert r.status_code == 404 and "error" in r.json()
    assert httpx.get(f"{server.url}{path}").status_code == 401
    # A period without fixes is a valid, empty track.
    empty = gpxpy.parse(get(server, path).text)
    assert [len(s.points) for t in empty.tracks for s in t.segments] == [0]
