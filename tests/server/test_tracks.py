"""GET /v1/vehicles/{id}/track (GeoJSON) and GET /v1/fleet/nearby over real HTTP."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from server.model import FixIn
from tests.server.running import RunningServer


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def store_fixes(server: RunningServer, device_id: int, fixes: list[FixIn]) -> None:
    now = datetime.now(UTC)
    server._with_store(lambda s: s.insert_fixes(device_id, fixes, now))


def get(server: RunningServer, path: str, role: str = "viewer", **params: Any) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", params=params, headers=server.operator(role))  # type: ignore[arg-type]


def round_the_block(start: datetime, seconds: int, **extra: Any) -> list[FixIn]:
    """A loop around a block, one fix a second from ``start``; ``extra`` as FixIn takes it."""
    return [
        FixIn(
            start + timedelta(seconds=i),
            45.0 + 0.001 * math.sin(i / 100),
            9.0 + 0.001 * math.cos(i / 100),
            **{k: v(i) if callable(v) else v for k, v in extra.items()},
        )
        for i in range(seconds)
    ]


def test_track_is_geojson_and_simplified_when_long(any_server: RunningServer) -> None:
    device, _ = any_server.add_device("bus-1")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    fixes = round_the_block(start, 3000)
    store_fixes(any_server, device.id, fixes)
    path = f"/v1/vehicles/{device.id}/track"
    r = get(any_server, path, **{"from": iso(start), "to": iso(start + timedelta(hours=1))})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["type"] == "FeatureCollection"
    (feature,) = doc["features"]
    assert feature["geometry"]["type"] == "LineString"
    coords = feature["geometry"]["coordinates"]
    props = feature["properties"]
    assert props["device_id"] == device.id and props["name"] == "bus-1"
    assert props["fixes"] == 3000 and props["points"] == len(coords) <= 2000
    assert props["simplified"] is True
    assert len(props["times"]) == len(coords)
    # GeoJSON order is [lon, lat]; both ends survive simplification.
    assert coords[0] == [fixes[0].lon, fixes[0].lat]
    assert coords[-1] == [fixes[-1].lon, fixes[-1].lat]
    assert props["times"][0] == iso(fixes[0].t) and props["times"][-1] == iso(fixes[-1].t)
    assert props["times"] == sorted(props["times"])
    assert doc["properties"]["from"] == iso(start)

    # A short range comes back whole; `to` is exclusive.
    r = get(any_server, path, **{"from": iso(start), "to": iso(start + timedelta(seconds=10))})
    props = r.json()["features"][0]["properties"]
    assert (props["fixes"], props["points"], props["simplified"]) == (10, 10, False)

    # max_points asks for a coarser line.
    r = get(any_server, path, max_points="50", **{"from": iso(start)})
    assert len(r.json()["features"][0]["geometry"]["coordinates"]) == 50


def test_track_edge_cases(server: RunningServer) -> None:
    device, _ = server.add_device("bus-1")
    path = f"/v1/vehicles/{device.id}/track"
    r = get(server, path)
    assert r.status_code == 200
    assert r.json()["features"] == []  # default: the last hour, nothing yet
    t = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    store_fixes(server, device.id, [FixIn(t, 45.0, 9.0)])
    (feature,) = get(server, path).json()["features"]
    assert feature["geometry"] == {"type": "Point", "coordinates": [9.0, 45.0]}
    epoch = get(
        server, path, **{"from": str(int(t.timestamp())), "to": str(int(t.timestamp()) + 1)}
    )
    assert len(epoch.json()["features"]) == 1


TRACK_BAD_QUERIES = [
    ({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "from: must be before to"),
    ({"from": "2026-01-01T00:00:00Z", "to": "2026-01-09T00:00:00Z"}, "from/to: at most 7 days"),
    ({"from": "2026-01-01T00:00:00"}, "from: needs a UTC offset"),
    ({"to": "tomorrow"}, "to: not an ISO 8601 time"),
    ({"from": "nan"}, "from: epoch seconds out of range"),
    ({"from": "1e400"}, "from: epoch seconds out of range"),
    ({"max_points": "1"}, "max_points: 1 outside 2..10000"),
    ({"max_points": "2.5"}, "max_points: must be an integer"),
]


def test_track_bad_query_is_422_with_reason(server: RunningServer) -> None:
    device, _ = server.add_device("bus-1")
    for params, reason in TRACK_BAD_QUERIES:
        r = get(server, f"/v1/vehicles/{device.id}/track", **params)
        assert r.status_code == 422, (params, r.text)
        assert r.json()["error"].startswith(reason), params


def test_track_needs_a_known_vehicle_and_a_signed_in_operator(server: RunningServer) -> None:
    assert get(server, "/v1/vehicles/999/track").status_code == 404
    assert get(server, f"/v1/vehicles/{2**70}/track").status_code == 404
    r = httpx.get(f"{server.url}/v1/vehicles/1/track")
    assert r.status_code == 401 and "error" in r.json()


def test_nearby_nearest_first_within_radius(any_server: RunningServer) -> None:
    t = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    # ~0 m, ~111 m and ~1.1 km north of the centre, and one in another city.
    for name, lat in (("far", 45.01), ("near", 45.001), ("here", 45.0), ("away", 46.0)):
        device, _ = any_server.add_device(name)
        store_fixes(any_server, device.id, [FixIn(t, lat, 9.0)])
    r = get(any_server, "/v1/fleet/nearby", lat="45.0", lon="9.0", radius="2000")
    assert r.status_code == 200, r.text
    body = r.json()
    assert [v["name"] for v in body["vehicles"]] == ["here", "near", "far"]
    assert [round(v["distance_m"], -1) for v in body["vehicles"]] == [0, 110, 1110]
    assert body["radius_m"] == 2000 and body["center"] == {"lat": 45.0, "lon": 9.0}
    r = get(any_server, "/v1/fleet/nearby", lat="45.0", lon="9.0", radius="500")
    assert [v["name"] for v in r.json()["vehicles"]] == ["here", "near"]
    # The default radius is 1 km.
    r = get(any_server, "/v1/fleet/nearby", lat="45.0", lon="9.0")
    assert [v["name"] for v in r.json()["vehicles"]] == ["here", "near"]


NEARBY_BAD_QUERIES = [
    ({"lon": "9"}, "lat and lon: required"),
    ({"lat": "91", "lon": "9"}, "lat: 91 outside -90..90"),
    ({"lat": "x", "lon": "9"}, "lat: not a number"),
    ({"lat": "45", "lon": "inf"}, "lon: inf outside -180..180"),
    ({"lat": "45", "lon": "9", "radius": "50001"}, "radius: 50001 outside 1..50000"),
    ({"lat": "45", "lon": "9", "radius": "NaN"}, "radius: NaN outside"),
]


def test_nearby_bad_query_is_422(server: RunningServer) -> None:
    for params, reason in NEARBY_BAD_QUERIES:
        r = get(server, "/v1/fleet/nearby", **params)
        assert r.status_code == 422, (params, r.text)
        assert r.json()["error"].startswith(reason), params
