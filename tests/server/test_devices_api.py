"""Device management API over real HTTP: register, list, rotate, revoke, roles."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx

from tests.server.running import RunningServer


def report(server: RunningServer, token: str) -> int:
    """Send one fix with ``token``; the status code says whether the token works."""
    fix = {"t": int(time.time()) - 5, "lat": 45.0, "lon": 9.0}
    r = httpx.post(
        f"{server.url}/v1/telemetry/location",
        json={"fixes": [fix]},
        headers={"Authorization": f"Bearer {token}"},
    )
    return r.status_code


def test_register_list_rotate_revoke(any_server: RunningServer) -> None:
    admin = any_server.operator("admin")
    url = any_server.url
    r = httpx.post(f"{url}/v1/devices", json={"name": "bus-17", "route": "5"}, headers=admin)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["name"] == "bus-17" and created["route"] == "5" and created["active"]
    token = created["token"]
    assert token.startswith("bt_")
    assert report(any_server, token) == 200

    listed = httpx.get(f"{url}/v1/devices", headers=any_server.operator("viewer")).json()
    # last_seen: when it last reported (a fix or a phone's heartbeat): just now.
    (device,) = listed["devices"]
    assert {k: v for k, v in device.items() if k != "last_seen"} == {
        k: v for k, v in created.items() if k != "token"
    }
    seen = datetime.fromisoformat(device["last_seen"])
    assert datetime.now(UTC) - timedelta(minutes=1) < seen <= datetime.now(UTC)
    assert "token" not in str(listed)  # shown once, never again

    r = httpx.post(f"{url}/v1/devices/{created['id']}/rotate", headers=admin)
    assert r.status_code == 200
    new_token = r.json()["token"]
    assert new_token != token
    assert report(any_server, token) == 401  # the old token stops at once
    assert report(any_server, new_token) == 200

    r = httpx.post(f"{url}/v1/devices/{created['id']}/revoke", headers=admin)
    assert r.status_code == 200 and r.json() == {"id": created["id"], "revoked": True}
    assert report(any_server, new_token) == 401
    (device,) = httpx.get(f"{url}/v1/devices", headers=admin).json()["devices"]
    assert device["active"] is False


def test_roles(server: RunningServer) -> None:
    body = {"name": "bus-1"}
    url = server.url
    for role in ("viewer", "operator"):
        headers = server.operator(role)
        assert httpx.get(f"{url}/v1/devices", headers=headers).status_code == 200
        r = httpx.post(f"{url}/v1/devices", json=body, headers=headers)
        assert r.status_code == 403 and "admin" in r.json()["error"]
        assert httpx.post(f"{url}/v1/devices/1/rotate", headers=headers).status_code == 403
        assert httpx.post(f"{url}/v1/devices/1/revoke", headers=headers).status_code == 403
    assert httpx.get(f"{url}/v1/devices").status_code == 401
    # A device token is not an operator credential.
    _, token = server.add_device("bus-0")
    r = httpx.get(f"{url}/v1/devices", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401


def test_bad_requests_are_4xx_with_reasons(server: RunningServer) -> None:
    admin = server.operator("admin")
    url = f"{server.url}/v1/devices"
    cases: list[tuple[bytes, int, str]] = [
        (b"{", 422, "body is not JSON"),
        (b"[]", 422, "body must be a JSON object"),
        (b"{}", 422, "name: must be a string"),
        (b'{"name": "  "}', 422, "name: must not be empty"),
        (b'{"name": "' + b"x" * 65 + b'"}', 422, "name: at most 64 characters"),
        (b'{"name": "bus\\n1"}', 422, "name: control characters"),
        (b'{"name": "bus-1", "route": 5}', 422, "route: must be a string"),
        (b'{"name": "' + b"x" * 5000 + b'"}', 413, "body larger than"),
    ]
    for body, status, reason in cases:
        r = httpx.post(url, content=body, headers=admin)
        assert r.status_code == status, (body[:40], r.text)
        assert r.json()["error"].startswith(reason), body[:40]
    assert httpx.post(url, json={"name": "bus-1"}, headers=admin).status_code == 201
    r = httpx.post(url, json={"name": "bus-1"}, headers=admin)
    assert r.status_code == 409 and "exists" in r.json()["error"]
    for action in ("rotate", "revoke"):
        for device_id in ("999", str(2**70), "-1"):
            r = httpx.post(f"{url}/{device_id}/{action}", headers=admin)
            assert r.status_code == 404, (action, device_id, r.text)
        r = httpx.post(f"{url}/abc/{action}", headers=admin)
        assert 400 <= r.status_code < 500 and "error" in r.json()
