"""GTFS feeds for tests (a small one written here, the shared ones in ../shared/gtfs); operators."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest

from tests.server.running import RunningServer

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "gtfs"

# A small feed of our own: one agency in Milan, two routes, one with a shape
# along Corso Buenos Aires; service every day of 2026 but not on 25 December.
SMALL: dict[str, str] = {
    "agency.txt": "agency_id,agency_name,agency_url,agency_timezone\n"
    "ATM,Milan Transit,https://example.org,Europe/Rome\n",
    "stops.txt": "stop_id,stop_name,stop_lat,stop_lon\n"
    "S1,Loreto,45.4858,9.2160\n"
    "S2,Lima,45.4800,9.2110\n"
    "S3,Porta Venezia,45.4745,9.2050\n"
    "S9,Far Away,45.6000,9.4000\n",
    "routes.txt": "route_id,agency_id,route_short_name,route_long_name,route_type,"
    "route_color,route_text_color\n"
    "R1,ATM,1,Loreto - Porta Venezia,3,ff0000,FFFFFF\n"
    "R2,ATM,2,Far line,3,,\n",
    "calendar.txt": "service_id,monday,tuesday,wednesday,thursday,friday,saturday,sunday,"
    "start_date,end_date\n"
    "ALL,1,1,1,1,1,1,1,20260101,20261231\n",
    "calendar_dates.txt": "service_id,date,exception_type\nALL,20261225,2\n",
    "shapes.txt": "shape_id,shape_pt_lat,shape_pt_lon,shape_pt_sequence\n"
    "SH1,45.4858,9.2160,1\nSH1,45.4800,9.2110,2\nSH1,45.4745,9.2050,3\n",
    "trips.txt": "route_id,service_id,trip_id,shape_id,block_id,trip_headsign,direction_id\n"
    "R1,ALL,T1,SH1,B1,Porta Venezia,0\n"
    "R2,ALL,T2,,,Far Away,0\n",
    "stop_times.txt": "trip_id,arrival_time,departure_time,stop_id,stop_sequence\n"
    "T1,08:00:00,08:00:00,S1,1\nT1,08:04:00,08:05:00,S2,2\nT1,08:10:00,08:10:00,S3,3\n"
    "T2,25:30:00,25:30:00,S3,1\nT2,26:00:00,26:00:00,S9,2\n",
}


def zipped(files: dict[str, str | bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buf.getvalue()


def small_zip(**changes: str | None) -> bytes:
    """SMALL with files replaced (a text) or left out (None)."""
    files: dict[str, str | bytes] = {}
    for name, text in {**SMALL, **changes}.items():
        if text is not None:
            files[name] = text
    return zipped(files)


def shared_feed(name: str) -> Path:
    """A feed directory of ../shared/gtfs; skipped when absent (failed on CI)."""
    path = SHARED / name
    if not path.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"shared GTFS feed missing: {path}")
        pytest.skip(f"shared GTFS feed missing: {path}")
    return path


def shared_zip(name: str) -> bytes:
    """A shared feed zipped the way an agency hands it over."""
    return zipped({f.name: f.read_bytes() for f in sorted(shared_feed(name).iterdir())})


def operator_headers(server: RunningServer) -> dict[str, str]:
    """A signed-in operator's headers: a token is only good with its sign-in stored."""
    return server.operator("operator")
