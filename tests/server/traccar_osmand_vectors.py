"""Every request of Traccar's own OsmAnd decoder test, through a real server over HTTP.

Source of the request shapes: the traccar/traccar repository on GitHub,
``src/test/java/org/traccar/protocol/OsmAndProtocolDecoderTest.java``
(``testDecodeQuery`` and ``testDecodeJson``), Copyright Anton Tananaev,
licensed under the Apache License, Version 2.0
(http://www.apache.org/licenses/LICENSE-2.0). The vectors below restate
those requests as data; the device ids in them are replaced by a real device
token when sent. The expected values are our reading of Traccar's decoder,
``src/main/java/org/traccar/protocol/OsmAndProtocolDecoder.java`` (query
form), quoted where it matters; the version of the decoder we read predates
the JSON test cases, so for those the expectations follow the request fields
and docs/protocol.md.

How Traccar's test verdicts map onto ours:

- ``verifyPosition``: a position is decoded → we store exactly one fix with
  the same time, lat/lon, course, altitude, hdop, accuracy and battery.
  Speed: Traccar keeps knots (``convertSpeed(value, "kn")`` is the identity);
  we store m/s, so ``speed_kn`` below is Traccar's value and we check
  ``speed_kn * 1852 / 3600``.
- ``verifyNotNull`` without a position: Traccar fills in the last known
  location (``if (position.getLatitude() == 0 && position.getLongitude() ==
  0) getLastLocation(...)``) → we store no position and mark the device seen
  (a heartbeat: ``no_gps`` in /v1/fleet/live).
- ``verifyNull`` (no ``id``/``deviceid``): Traccar answers 400 and decodes
  nothing → we answer 401 and store nothing.

Deliberate differences, also noted per vector:

- ``id`` is our device *token*, never an IMEI or a name (docs/decisions.md
  D13); an unknown or missing one is 401, not Traccar's 400.
- ``yyyy-MM-dd HH:mm:ss`` is read as UTC, not in the server's time zone.
- Traccar takes a numeric ``timestamp`` below 2^31 - 1 as seconds, else as
  milliseconds; we switch at 10^11 (no request here falls in between).
- Negative JSON readings (``-1``: unknown) are stored as absent, where Traccar
  keeps the -1; ``battery.level`` (0..1) is stored as a percentage.
- Attributes we have no column for (cell, wifi, ignition, rpm, fuel, vacc,
  hacc, odometer, activity, extras, mock) are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Vector:
    name: str
    verdict: str  # Traccar's: verifyPosition, verifyNotNull, verifyNull
    path: str  # the request as Traccar's test makes it; a POST
    body: dict[str, Any] | None = None  # JSON body (Content-Type: application/json)
    traccar_id: str | None = None  # replaced by a device token before sending
    status: int = 200
    # The stored fix; "now" for t means "dated on arrival" (no timestamp sent).
    fix: dict[str, Any] | None = None
    note: str = ""


def t(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


def location(**fields: Any) -> dict[str, Any]:
    return fields


QUERY = [
    Vector(
        "cell_and_wifi_without_position",
        "verifyNotNull",
        "/?id=123456&timestamp=1377177267&cell=257,02,16,2224&cell=257,02,16,2223,-90"
        "&wifi=00-14-22-01-23-45,-80&wifi=00-1C-B3-09-85-15,-70",
        traccar_id="123456",
        note="no lat/lon: Traccar reuses the last location; we store none and mark seen",
    ),
    Vector(
        "no_device_id",
        "verifyNull",
        "/?timestamp=1377177267&lat=60.0&lon=30.0",
        status=401,
        note="Traccar: deviceId 0 -> 400 BAD_REQUEST; we: 401, the token is missing",
    ),
    Vector(
        "iso_timestamp_hdop_altitude",
        "verifyPosition",
        "/?id=902064&lat=42.06288&lon=-88.23412&timestamp=2016-01-27T18%3A55%3A47Z"
        "&hdop=6.0&altitude=224.0&speed=0.0",
        traccar_id="902064",
        # value.contains("T") -> DateUtil.parseDate(value)
        fix=dict(
            t=t("2016-01-27T18:55:47+00:00"),
            lat=42.06288,
            lon=-88.23412,
            hdop=6.0,
            alt=224.0,
            speed_kn=0.0,
        ),
    ),
    Vector(
        "epoch_milliseconds",
        "verifyPosition",
        "/?id=902064&lat=42.06288&lon=-88.23412&timestamp=1442068686579&hdop=6.0"
        "&altitude=224.0&speed=0.0",
        traccar_id="902064",
        # Long.parseLong; not < Integer.MAX_VALUE, so already milliseconds
        fix=dict(
            t=t("2015-09-12T14:38:06.579+00:00"),
            lat=42.06288,
            lon=-88.23412,
            hdop=6.0,
            alt=224.0,
            speed_kn=0.0,
        ),
    ),
    Vector(
        "local_date_time_and_id_last",
        "verifyPosition",
        "/?lat=49.60688&lon=6.15788&timestamp=2014-06-04+09%3A10%3A11&altitude=384.7"
        "&speed=0.0&id=353861053849681",
        traccar_id="353861053849681",
        # SimpleDateFormat("yyyy-MM-dd HH:mm:ss") in the server's zone; ours is UTC
        fix=dict(
            t=t("2014-06-04T09:10:11+00:00"), lat=49.60688, lon=6.15788, alt=384.7, speed_kn=0.0
        ),
        note="deliberate: a time without a zone is UTC",
    ),
    Vector(
        "epoch_seconds_all_fields",
        "verifyPosition",
        "/?id=123456&timestamp=1377177267&lat=60.0&lon=30.0&speed=0.0&bearing=0.0&altitude=0"
        "&hdop=0.0",
        traccar_id="123456",
        # timestamp < Integer.MAX_VALUE -> seconds (timestamp *= 1000)
        fix=dict(
            t=t("2013-08-22T13:14:27+00:00"),
            lat=60.0,
            lon=30.0,
            speed_kn=0.0,
            heading=0.0,
            alt=0.0,
            hdop=0.0,
        ),
    ),
    Vector(
        "epoch_seconds_position_only",
        "verifyPosition",
        "/?id=123456&timestamp=1377177267&lat=60.0&lon=30.0",
        traccar_id="123456",
        fix=dict(t=t("2013-08-22T13:14:27+00:00"), lat=60.0, lon=30.0),
    ),
    Vector(
        "deviceid_heading_no_timestamp",
        "verifyPosition",
        "/?lat=60.0&lon=30.0&speed=0.0&heading=0.0&vacc=0&hacc=0&altitude=0&deviceid=123456",
        traccar_id="123456",
        # "bearing"/"heading" -> course; no timestamp: position.setTime(new Date())
        fix=dict(t="now", lat=60.0, lon=30.0, speed_kn=0.0, heading=0.0, alt=0.0),
    ),
    Vector(
        "battery_no_timestamp",
        "verifyPosition",
        "/?id=861001000719969&lat=41.666667&lon=-0.883333&altitude=350.059479"
        "&speed=0.000000&batt=87",
        traccar_id="861001000719969",
        # "batt" -> Position.KEY_BATTERY_LEVEL
        fix=dict(t="now", lat=41.666667, lon=-0.883333, alt=350.059479, speed_kn=0.0, battery=87.0),
    ),
    Vector(
        "location_parameter",
        "verifyPosition",
        "/?id=123456&timestamp=1377177267&location=60.0,30.0",
        traccar_id="123456",
        # "location" -> value.split(","): latitude, longitude
        fix=dict(t=t("2013-08-22T13:14:27+00:00"), lat=60.0, lon=30.0),
    ),
    Vector(
        "speed_in_knots_and_other_attributes",
        "verifyPosition",
        "/?id=123456789012345&timestamp=1504763810&lat=40.7232948571&lon=-74.0061408571"
        "&bearing=7.19889788244&speed=40&ignition=true&rpm=933&fuel=24",
        traccar_id="123456789012345",
        fix=dict(
            t=t("2017-09-07T05:56:50+00:00"),
            lat=40.7232948571,
            lon=-74.0061408571,
            heading=7.19889788244,
            speed_kn=40.0,
        ),
        note="ignition, rpm, fuel: Traccar keeps them as attributes; we ignore them",
    ),
]

_COORDS_1 = location(
    latitude=37.4219983, longitude=-122.084, accuracy=5, speed=0, heading=-1, altitude=5
)
_LOC_1 = location(
    timestamp="2025-06-15T13:45:12.862Z",
    coords=_COORDS_1,
    is_moving=False,
    odometer=0,
    event="motionchange",
    battery={"level": 1, "is_charging": False},
    activity={"type": "still"},
    extras={},
    _="&id=48241179&lat=37.4219983&lon=-122.084&timestamp=2025-06-15T13:45:12.862Z&",
)
_FIX_1 = dict(
    t=t("2025-06-15T13:45:12.862+00:00"),
    lat=37.4219983,
    lon=-122.084,
    accuracy=5.0,
    speed=0.0,
    heading=None,
    alt=5.0,
    battery=100.0,
    charge=False,
)

JSON = [
    Vector(
        "json_traccar_client_9",
        "verifyPosition",
        "/",
        body={"location": _LOC_1, "device_id": "48241179"},
        traccar_id="48241179",
        fix=_FIX_1,
        note="heading -1 (unknown) stored as absent; battery.level 1 -> 100 %",
    ),
    Vector(
        "json_with_extras",
        "verifyPosition",
        "/",
        body={
            "location": {
                **_LOC_1,
                "extras": {
                    "device_string_test": "long_device_id",
                    "device_bool_test": True,
                    "device_bool_false_test": False,
                    "device_integer_test": 1,
                    "device_double_test": 1.345,
                    "device_very_long_double_test": 1763636.3442,
                },
            },
            "device_id": "48241179",
        },
        traccar_id="48241179",
        fix=_FIX_1,
        note="extras are ignored",
    ),
    Vector(
        "json_ios_mock_unknown_readings",
        "verifyPosition",
        "/",
        body={
            "location": location(
                extras={},
                mock=True,
                coords=location(
                    speed_accuracy=-1,
                    speed=-1,
                    longitude=-122.406417,
                    ellipsoidal_altitude=0,
                    floor=None,
                    heading_accuracy=-1,
                    latitude=37.785834000000001,
                    accuracy=5,
                    altitude_accuracy=-1,
                    altitude=0,
                    heading=-1,
                ),
                is_moving=False,
                age=188,
                odometer=0,
                uuid="2FB04C65-99CF-42AB-8DD3-EBCB4B108BF8",
                event="motionchange",
                battery={"level": -1, "is_charging": False},
                activity={"type": "unknown", "confidence": 100},
                timestamp="2025-05-09T04:11:30.579Z",
            ),
            "device_id": "658765",
        },
        traccar_id="658765",
        fix=dict(
            t=t("2025-05-09T04:11:30.579+00:00"),
            lat=37.785834,
            lon=-122.406417,
            accuracy=5.0,
            speed=None,
            heading=None,
            alt=0.0,
            battery=None,
            charge=False,
        ),
        note="speed, heading and battery level -1 mean unknown: stored as absent",
    ),
    Vector(
        "json_moving",
        "verifyPosition",
        "/",
        body={
            "location": location(
                event="motionchange",
                is_moving=False,
                uuid="0e9a2473-a9a7-4c00-997b-fb97d2154e75",
                timestamp="2021-07-21T08:06:34.444Z",
                odometer=0,
                coords=location(
                    latitude=-6.1148096,
                    longitude=106.6837015,
                    accuracy=3.8,
                    speed=18.67,
                    speed_accuracy=0.26,
                    heading=63,
                    heading_accuracy=0.28,
                    altitude=35.7,
                    altitude_accuracy=3.8,
                ),
                activity={"type": "still", "confidence": 100},
                battery={"is_charging": False, "level": 0.79},
                extras={},
            ),
            "device_id": "8737767034",
        },
        traccar_id="8737767034",
        # JSON speed is m/s (Traccar converts it to knots; we keep m/s)
        fix=dict(
            t=t("2021-07-21T08:06:34.444+00:00"),
            lat=-6.1148096,
            lon=106.6837015,
            accuracy=3.8,
            speed=18.67,
            heading=63.0,
            alt=35.7,
            battery=79.0,
            charge=False,
        ),
    ),
]

VECTORS = QUERY + JSON
