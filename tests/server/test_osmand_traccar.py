"""Every request of Traccar's own OsmAnd decoder test, through a real server over HTTP.

The vectors, their source (traccar/traccar, Apache-2.0) and how Traccar's
verdicts map onto ours are in ``tests/server/traccar_osmand_vectors.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from server.model import FixIn
from tests.server.running import RunningServer
from tests.server.traccar_osmand_vectors import VECTORS, Vector

KNOT_MS = 1852 / 3600


@dataclass
class Sent:
    response: httpx.Response
    before: datetime
    after: datetime
    device_id: int
    stored: list[FixIn] = field(default_factory=list)


def send(server: RunningServer, vector: Vector) -> Sent:
    device, token = server.add_device(f"phone-{vector.name}"[:60])
    path = vector.path
    if vector.traccar_id is not None and vector.body is None:
        for key in ("id", "deviceid"):
            path = path.replace(f"{key}={vector.traccar_id}", f"{key}={token}")
        assert token in path, "the vector names its device id"
    before = datetime.now(UTC)
    if vector.body is not None:
        body = {**vector.body, "device_id": token}
        r = httpx.post(
            server.url + path,
            content=json.dumps(body),
            headers={"Content-Type": "application/json"},
        )
    else:
        r = httpx.post(server.url + path)  # Traccar's test requests carry no body
    after = datetime.now(UTC)
    end = after + timedelta(days=1)
    stored = server._with_store(lambda s: s.track(device.id, datetime(2000, 1, 1, tzinfo=UTC), end))
    return Sent(r, before, after, device.id, stored)


@pytest.mark.parametrize("vector", VECTORS, ids=[v.name for v in VECTORS])
def test_traccar_request(any_server: RunningServer, vector: Vector) -> None:
    sent = send(any_server, vector)
    r = sent.response
    assert r.status_code == vector.status, r.text
    if vector.status != 200:
        assert "error" in r.json()
        assert sent.stored == []
        return
    answer = r.json()
    assert answer["rejected"] == [], answer
    if vector.fix is None:
        # No position in the request: nothing stored, the device is heard from.
        assert (answer["accepted"], answer["seen"], sent.stored) == (0, True, [])
        vehicles = httpx.get(
            f"{any_server.url}/v1/fleet/live", headers=any_server.operator("viewer")
        ).json()["vehicles"]
        [vehicle] = [v for v in vehicles if v["device_id"] == sent.device_id]
        assert (vehicle["state"], vehicle["lat"]) == ("no_gps", None)
        return
    assert answer["accepted"] == 1, answer
    [fix] = sent.stored
    want = dict(vector.fix)
    when = want.pop("t")
    if when == "now":
        assert sent.before - timedelta(seconds=1) <= fix.t <= sent.after
    else:
        assert fix.t == when
    if "speed_kn" in want:
        want["speed"] = want.pop("speed_kn") * KNOT_MS
    for key in ("speed", "heading", "alt", "hdop", "accuracy", "battery", "charge"):
        want.setdefault(key, None)
    got = {key: getattr(fix, key) for key in want}
    assert got == pytest.approx(want), vector.note
