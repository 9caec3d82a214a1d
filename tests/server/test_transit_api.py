"""The routes list and riders' transit reads over real HTTP, on both stores, after a CLI import."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server.cli import main
from tests.server.gtfs_feeds import operator_headers, shared_zip, small_zip
from tests.server.live_client import fix, post_fixes
from tests.server.running import RunningServer, server_per_store


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgis", marks=pytest.mark.postgis)]
)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    yield from server_per_store(request, tmp_path_factory, "transit")


def _import(server: RunningServer, tmp: Path, data: bytes, capsys: pytest.CaptureFixture[str],
            monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:  # fmt: skip
    path = tmp / "feed.zip"
    path.write_bytes(data)
    monkeypatch.setenv("BUSTRACKER_DATA_DIR", str(server.settings.store.data_dir))
    if server.settings.store.database_url:
        monkeypatch.setenv("DATABASE_URL", server.settings.store.database_url)
    else:
        monkeypatch.delenv("DATABASE_URL", raising=False)
    code = main(["gtfs", "import", str(path)])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_import_then_riders_read_routes_shapes_and_stops(
    server: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    code, out = _import(server, tmp_path, small_zip(), capsys, monkeypatch)
    assert code == 0, out
    assert "2 routes, 2 trips, 4 stops" in out
    routes = httpx.get(f"{server.url}/v1/routes").json()
    assert {"route_id": "R1", "short_name": "1", "long_name": "Loreto - Porta Venezia",
            "color": "FF0000", "text_color": "FFFFFF", "type": 3,
            "source": "gtfs"} in routes  # fmt: skip
    r1 = httpx.get(f"{server.url}/v1/routes/R1").json()
    assert r1["shapes"] == [[[45.4858, 9.2160], [45.4800, 9.2110], [45.4745, 9.2050]]]
    assert [s["stop_id"] for s in r1["stops"]] == ["S1", "S2", "S3"]
    near = httpx.get(f"{server.url}/v1/stops/near", params={"lat": 45.4801, "lon": 9.2111,
                                                            "limit": 2}).json()  # fmt: skip
    assert [(s["stop_id"], s["routes"]) for s in near] == [("S2", ["R1"]), ("S1", ["R1"])]
    assert 0 < near[0]["distance_m"] < 20
    # A bus on R1 before Lima shows at it, with the time it needs; one past Lima and one
    # far off R1's street do not; one on R2 (not serving S2) does not either.
    # And one where bus-r1 is, standing after driving back towards Loreto: not coming either.
    tokens = {name: server.add_device(name, route)[1] for name, route in (
        ("bus-r1", "R1"), ("bus-r2", "R2"), ("bus-past", "R1"), ("bus-off", "R1"),
        ("bus-back", "R1"))}  # fmt: skip
    post_fixes(server.url, tokens["bus-back"], fix(45.4829, 9.2134, 3, speed=7.0, heading=34.0))
    post_fixes(server.url, tokens["bus-back"], fix(45.4830, 9.2135, 1, speed=0.0))
    post_fixes(server.url, tokens["bus-r1"], fix(45.4830, 9.2135))
    post_fixes(server.url, tokens["bus-r2"], fix(45.4802, 9.2112))
    post_fixes(server.url, tokens["bus-past"], fix(45.47725, 9.2080, speed=7.0, heading=215.0))
    post_fixes(server.url, tokens["bus-off"], fix(45.4900, 9.2300))
    deadline = time.monotonic() + 10
    while True:
        stop = httpx.get(f"{server.url}/v1/stops/S3").json()
        if len(stop["buses"]) == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    lima = httpx.get(f"{server.url}/v1/stops/S2").json()
    assert lima["routes"] == ["R1"] and lima["name"] == "Lima"
    [bus] = lima["buses"]
    assert (bus["label"], bus["route_id"], bus["state"]) == ("bus-r1", "R1", "online")
    assert bus["id"].startswith("v") and 300 < bus["distance_m"] < 400
    assert bus["distance_kind"] == "along_route"
    # No speed reported: ARRIVAL_SPEED's 18 km/h, 5 m/s, less the fix's age.
    assert isinstance(bus["eta_s"], int) and 55 <= bus["eta_s"] <= round(bus["distance_m"] / 5)
    # At Porta Venezia (R1's end, R2's start): soonest first, R2's bus (no shape) last
    # with its straight-line distance and no time.
    assert stop["routes"] == ["R1", "R2"]
    assert [b["label"] for b in stop["buses"]] == ["bus-past", "bus-r1", "bus-r2"]
    past, r1, r2 = stop["buses"]
    assert past["eta_s"] < r1["eta_s"] and past["distance_m"] < r1["distance_m"]
    assert r1["distance_m"] > bus["distance_m"] + 700  # on to Lima, then to Porta Venezia
    assert (r2["distance_kind"], r2["eta_s"]) == ("straight_line", None)
    assert 700 < r2["distance_m"] < 900


def test_a_broken_feed_is_refused_naming_file_line_and_field(
    server: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    before = httpx.get(f"{server.url}/v1/routes").json()
    code, out = _import(server, tmp_path, shared_zip("bad_date_format"), capsys, monkeypatch)
    assert code == 2
    assert "calendar.txt line 2, field start_date: not a date as YYYYMMDD: '2007.01.01'" in out
    assert "nothing imported" in out
    assert httpx.get(f"{server.url}/v1/routes").json() == before


def test_operators_manage_their_routes_and_not_the_feeds(server: RunningServer) -> None:
    op = operator_headers(server)
    url = f"{server.url}/v1/routes"
    made = httpx.post(url, json={"route_id": "N7", "short_name": "N7", "color": "#00aa55"},
                      headers=op)  # fmt: skip
    assert made.status_code == 201, made.text
    assert made.json()["color"] == "00AA55"
    assert (
        httpx.post(url, json={"route_id": "N7", "short_name": "x"}, headers=op).status_code == 409
    )
    bad = httpx.post(url, json={"route_id": "N8", "short_name": "N8", "color": "red"}, headers=op)
    assert bad.status_code == 422 and bad.json()["error"].startswith("color:")
    changed = httpx.patch(f"{url}/N7", json={"long_name": "Night"}, headers=op)
    assert changed.json()["long_name"] == "Night"
    assert httpx.patch(f"{url}/R1", json={"short_name": "x"}, headers=op).status_code == 409
    assert httpx.delete(f"{url}/R1", headers=op).status_code == 409
    assert httpx.delete(f"{url}/N7", headers=op).status_code == 204
    assert httpx.get(f"{url}/N7").status_code == 404
    assert httpx.get(f"{server.url}/v1/stops/NOPE").status_code == 404
    assert httpx.get(f"{server.url}/v1/stops/near", params={"lat": 91, "lon": 0}).status_code == 422
