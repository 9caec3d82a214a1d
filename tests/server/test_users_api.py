"""Operator accounts over real HTTP, on both stores: admins manage them, changes apply at once.

What a demoted, deleted or re-passworded operator notices: their very next
request with a token issued before is refused or runs with the new role, and
the live stream they had open closes with 4401.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.server.live_client import live_ws
from tests.server.running import RunningServer

PASSWORD = "correct horse battery"


def _login(server: RunningServer, name: str, password: str = PASSWORD) -> dict[str, Any]:
    r = httpx.post(f"{server.url}/v1/auth/login", json={"username": name, "password": password})
    assert r.status_code == 200, r.text
    tokens: dict[str, Any] = r.json()
    return tokens


def _bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def _closed_with(ws: Any) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as closed:
        ws.wait_for(lambda f: False)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


def test_admins_manage_accounts_and_changes_apply_at_the_next_request(
    any_server: RunningServer,
) -> None:
    url = any_server.url
    any_server.add_user("root", PASSWORD, "admin")
    root = _bearer(_login(any_server, "root"))
    r = httpx.post(
        f"{url}/v1/users",
        headers=root,
        json={"username": "mal", "password": PASSWORD, "role": "admin"},
    )
    assert r.status_code == 201, r.text
    mal_id = r.json()["id"]
    assert r.json() == {"id": mal_id, "username": "mal", "role": "admin"}
    listed = httpx.get(f"{url}/v1/users", headers=root).json()["users"]
    assert [u["username"] for u in listed] == ["root", "mal"]
    assert all(set(u) == {"id", "username", "role"} for u in listed), "no hash in any answer"

    mal = _bearer(_login(any_server, "mal"))
    assert httpx.post(f"{url}/v1/devices", headers=mal, json={"name": "bus-1"}).status_code == 201
    with live_ws(url, token=mal["Authorization"][7:]) as ws:
        ws.snapshot()
        r = httpx.patch(f"{url}/v1/users/{mal_id}", headers=root, json={"role": "viewer"})
        assert r.status_code == 200 and r.json()["role"] == "viewer"
        assert _closed_with(ws) == (4401, "role is now viewer")
    # The token issued while admin now carries a viewer's rights.
    r = httpx.post(f"{url}/v1/devices", headers=mal, json={"name": "bus-2"})
    assert r.status_code == 403, r.text
    r = httpx.post(f"{url}/v1/devices/1/rotate", headers=mal)
    assert r.status_code == 403
    assert httpx.get(f"{url}/v1/devices", headers=mal).status_code == 200

    with live_ws(url, token=mal["Authorization"][7:]) as ws:
        ws.snapshot()
        assert httpx.delete(f"{url}/v1/users/{mal_id}", headers=root).status_code == 204
        assert _closed_with(ws) == (4401, "account deleted")
    r = httpx.get(f"{url}/v1/devices", headers=mal)
    assert r.status_code == 401 and r.json() == {"error": "signed out; sign in again"}
    assert httpx.delete(f"{url}/v1/users/{mal_id}", headers=root).status_code == 404


def test_the_last_admin_stays_and_bad_bodies_get_reasons(server: RunningServer) -> None:
    url = server.url
    root_user = server.add_user("root", PASSWORD, "admin")
    root = _bearer(_login(server, "root"))
    for method, body in (("PATCH", {"role": "operator"}), ("DELETE", None)):
        r = httpx.request(method, f"{url}/v1/users/{root_user.id}", headers=root, json=body)
        assert r.status_code == 409, r.text
        assert "last admin" in r.json()["error"]
    bad = {
        "username: required string": {"password": PASSWORD, "role": "viewer"},
        "password: 8 to 1024 characters": {"username": "x", "password": "short", "role": "viewer"},
        "role: one of admin, operator, viewer": {
            "username": "x", "password": PASSWORD, "role": "god",
        },
        "hash: unknown field; expected password, role, username": {
            "username": "x", "password": PASSWORD, "role": "viewer", "hash": "x",
        },
        "body must be a JSON object": [],
    }  # fmt: skip
    for reason, body in bad.items():
        r = httpx.post(f"{url}/v1/users", headers=root, json=body)
        assert (r.status_code, r.json()) == (422, {"error": reason}), body
    r = httpx.post(
        f"{url}/v1/users",
        headers=root,
        json={"username": "root", "password": PASSWORD, "role": "viewer"},
    )
    assert r.status_code == 409
    r = httpx.patch(f"{url}/v1/users/{root_user.id}", headers=root, json={})
    assert (r.status_code, r.json()) == (422, {"error": "body: give role and/or password"})
    r = httpx.patch(f"{url}/v1/users/999999", headers=root, json={"role": "viewer"})
    assert r.status_code == 404


def test_a_new_password_ends_every_sign_in_of_the_user(server: RunningServer) -> None:
    url = server.url
    server.add_user("root", PASSWORD, "admin")
    vera = server.add_user("vera", PASSWORD, "viewer")
    root = _bearer(_login(server, "root"))
    phone, laptop = _login(server, "vera"), _login(server, "vera")
    r = httpx.patch(f"{url}/v1/users/{vera.id}", headers=root, json={"password": "n3w-password"})
    assert r.status_code == 200
    for tokens in (phone, laptop):
        assert httpx.get(f"{url}/v1/devices", headers=_bearer(tokens)).status_code == 401
        r = httpx.post(f"{url}/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert r.status_code == 401
    _login(server, "vera", "n3w-password")
