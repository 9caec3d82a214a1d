"""POST /v1/telemetry/location over real HTTP: auth, limits, bad bodies, answers."""

from __future__ import annotations

import gzip
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.server.running import RunningServer
from tests.server.stored import count_fixes


def fixes(n: int, start: datetime | None = None) -> list[dict[str, Any]]:
    start = start or datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    return [
        {
            "t": (start + timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
            "lat": 45.46 + i * 1e-4,
            "lon": 9.19 + i * 1e-4,
            "speed": 5.0,
            "heading": 90.0,
        }
        for i in range(n)
    ]


def post(server: RunningServer, token: str, body: Any, **kw: Any) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/telemetry/location",
        json=body,
        headers={"Authorization": f"Bearer {token}", **kw.pop("headers", {})},
        **kw,
    )


def test_accepts_and_advertises_limits(any_server: RunningServer) -> None:
    _, token = any_server.add_device("bus-1")
    batch = fixes(3)
    r = post(any_server, token, {"fixes": batch, "agent": {"version": "1.0.0", "backlog": 0}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (3, 0, [])
    assert body["limits"] == {
        "requests_per_minute": 10,
        "max_batch": 500,
        "max_body_bytes": 1048576,
    }
    assert r.headers["RateLimit-Limit"] == "10"
    assert r.headers["RateLimit-Remaining"] == "9"
    assert r.headers["RateLimit-Policy"] == "10;w=60"
    assert r.headers["X-Max-Batch"] == "500"
    again = post(any_server, token, {"fixes": batch})
    assert again.json()["duplicates"] == 3


def test_wrong_missing_or_revoked_token_is_401_with_reason(server: RunningServer) -> None:
    device, token = server.add_device("bus-1")
    assert post(server, "bt_not-a-token", {"fixes": fixes(1)}).status_code == 401
    r = httpx.post(f"{server.url}/v1/telemetry/location", json={"fixes": fixes(1)})
    assert r.status_code == 401 and r.json()["error"] == "missing device token"
    assert post(server, token, {"fixes": fixes(1)}).status_code == 200
    revoke = httpx.post(f"{server.url}/v1/devices/{device.id}/revoke", headers=server.operator())
    assert revoke.status_code == 200
    r = post(server, token, {"fixes": fixes(1)})
    assert r.status_code == 401
    assert "revoked" in r.json()["error"]


def test_operator_token_cannot_report_positions(server: RunningServer) -> None:
    headers = server.operator("admin")
    r = httpx.post(f"{server.url}/v1/telemetry/location", json={"fixes": fixes(1)}, headers=headers)
    assert r.status_code == 401


def test_rate_limit_per_device_with_retry_after(server_factory: Any) -> None:
    server = server_factory()
    _, token_a = server.add_device("bus-a")
    _, token_b = server.add_device("bus-b")
    codes = [post(server, token_a, {"fixes": fixes(1)}).status_code for _ in range(10)]
    assert codes == [200] * 10
    r = post(server, token_a, {"fixes": fixes(1)})
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) >= 1
    assert r.headers["RateLimit-Remaining"] == "0"
    assert r.json()["limits"]["requests_per_minute"] == 10
    # Another bus is not punished for its neighbour, even from the same address.
    assert post(server, token_b, {"fixes": fixes(1)}).status_code == 200


def test_gzip_body_and_gzip_bomb(server: RunningServer) -> None:
    _, token = server.add_device("bus-1")
    raw = json.dumps({"fixes": fixes(50)}).encode()
    r = httpx.post(
        f"{server.url}/v1/telemetry/location",
        content=gzip.compress(raw),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Encoding": "gzip",
            "Content-Type": "application/json",
        },
    )
    assert r.status_code == 200 and r.json()["accepted"] == 50
    bomb = gzip.compress(b'{"fixes": [' + b" " * (50 * 1024 * 1024) + b"]}")
    assert len(bomb) < 100_000
    r = httpx.post(
        f"{server.url}/v1/telemetry/location",
        content=bomb,
        headers={"Authorization": f"Bearer {token}", "Content-Encoding": "gzip"},
    )
    assert r.status_code == 413
    assert "inflated" in r.json()["error"]


def test_huge_body_and_batch_over_limit(server: RunningServer) -> None:
    _, token = server.add_device("bus-1")
    r = httpx.post(
        f"{server.url}/v1/telemetry/location",
        content=b"x" * (2 * 1024 * 1024),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 413
    assert "error" in r.json()
    r = post(server, token, {"fixes": fixes(501)})
    assert r.status_code == 413
    assert r.json()["max_batch"] == 500


def test_unreadable_body_is_422_and_keeps_what_was_accepted(any_server: RunningServer) -> None:
    device, token = any_server.add_device("bus-1")
    assert post(any_server, token, {"fixes": fixes(2)}).json()["accepted"] == 2
    r = httpx.post(
        f"{any_server.url}/v1/telemetry/location",
        content=b'{"fixes": [',
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 422
    assert r.json()["error"].startswith("body is not JSON")
    assert any_server._with_store(lambda s: count_fixes(s, device.id)) == 2


def test_one_bad_fix_does_not_block_the_batch(server: RunningServer) -> None:
    device, token = server.add_device("bus-1")
    batch = fixes(3)
    batch[1]["lat"] = "45.1"
    r = post(server, token, {"fixes": batch})
    assert r.status_code == 200
    assert r.json()["accepted"] == 2
    assert r.json()["rejected"] == [{"index": 1, "reason": "lat: must be a number, got str"}]
    future = fixes(1, datetime.now(UTC) + timedelta(hours=1))
    r = post(server, token, {"fixes": future})
    assert r.json()["accepted"] == 0
    assert "future" in r.json()["rejected"][0]["reason"]
    assert server._with_store(lambda s: count_fixes(s, device.id)) == 2


def test_token_revoked_by_the_cli_stops_working_within_the_cache_ttl(server_factory: Any) -> None:
    # `bustracker device revoke` writes to the database, not to this process: the
    # server's token cache must still let go of the device by itself.
    server = server_factory(device_cache_s=2)
    device, token = server.add_device("bus-1")
    assert post(server, token, {"fixes": fixes(1)}).status_code == 200
    server._with_store(lambda s: s.revoke_device(device.id))
    codes = []
    for _ in range(8):
        codes.append(post(server, token, {"fixes": fixes(1)}).status_code)
        if codes[-1] != 200:
            break
        time.sleep(2)
    assert codes[-1] == 401, codes
