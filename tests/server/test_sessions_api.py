"""Sign-ins over real HTTP: refresh rotation, reuse, sign-out, own password, guessing budget."""

from __future__ import annotations

from typing import Any

import httpx

from tests.server.running import RunningServer

PASSWORD = "correct horse battery"


def _login(server: RunningServer, password: str = PASSWORD) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/auth/login", json={"username": "alice", "password": password}
    )


def _refresh(server: RunningServer, tokens: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )


def _fleet(server: RunningServer, tokens: dict[str, Any]) -> int:
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    return httpx.get(f"{server.url}/v1/fleet/live", headers=headers).status_code


def test_refresh_rotates_and_a_reused_refresh_token_ends_the_sign_in(
    any_server: RunningServer,
) -> None:
    any_server.add_user("alice", PASSWORD, "operator")
    first = _login(any_server).json()
    second = _refresh(any_server, first)
    assert second.status_code == 200
    assert second.json()["refresh_token"] != first["refresh_token"]
    # The first refresh token again, as a thief holding a copy would send it.
    r = _refresh(any_server, first)
    assert r.status_code == 401
    assert r.json() == {"error": "refresh token already used or signed out; sign in again"}
    # The whole sign-in is over: the rightful owner's newer tokens too.
    assert _refresh(any_server, second.json()).status_code == 401
    assert _fleet(any_server, second.json()) == 401
    assert _login(any_server).status_code == 200


def test_sign_out_ends_that_sign_in_only(any_server: RunningServer) -> None:
    any_server.add_user("alice", PASSWORD, "operator")
    phone, laptop = _login(any_server).json(), _login(any_server).json()
    r = httpx.post(
        f"{any_server.url}/v1/auth/logout", json={"refresh_token": laptop["refresh_token"]}
    )
    assert r.status_code == 204
    assert _fleet(any_server, laptop) == 401
    assert _refresh(any_server, laptop).status_code == 401
    assert _fleet(any_server, phone) == 200
    r = httpx.post(f"{any_server.url}/v1/auth/logout", json={"refresh_token": "nope"})
    assert r.status_code == 401


def test_changing_ones_own_password(server: RunningServer) -> None:
    server.add_user("alice", PASSWORD, "viewer")
    other, mine = _login(server).json(), _login(server).json()
    headers = {"Authorization": f"Bearer {mine['access_token']}"}
    url = f"{server.url}/v1/auth/password"
    r = httpx.post(url, headers=headers, json={"current": "wrong-one", "new": "n3w-password"})
    assert (r.status_code, r.json()) == (403, {"error": "current: wrong password"})
    r = httpx.post(url, headers=headers, json={"current": PASSWORD, "new": "short"})
    assert (r.status_code, r.json()) == (422, {"error": "new: 8 to 1024 characters"})
    r = httpx.post(url, headers=headers, json={"current": PASSWORD, "new": "n3w-password"})
    assert r.status_code == 200, r.text
    fresh = r.json()
    assert _fleet(server, fresh) == 200
    assert _fleet(server, mine) == 401 and _fleet(server, other) == 401
    assert _login(server).status_code == 401
    assert _login(server, "n3w-password").status_code == 200
    # An admin sees who changed it, and only the change that happened.
    server.add_user("root", PASSWORD, "admin")
    admin = httpx.post(
        f"{server.url}/v1/auth/login", json={"username": "root", "password": PASSWORD}
    ).json()
    audit = httpx.get(
        f"{server.url}/v1/audit?target_type=user",
        headers={"Authorization": f"Bearer {admin['access_token']}"},
    ).json()
    assert [(e["action"], e["actor"], e["detail"]) for e in audit] == [
        ("user.update", "alice", {"username": "alice", "password": "set"})
    ]
    assert "n3w-password" not in str(audit) and "wrong-one" not in str(audit)


def test_only_failed_sign_ins_count_and_a_huge_body_is_413(server: RunningServer) -> None:
    server.add_user("alice", PASSWORD, "viewer")
    # 9 failures and 3 successes pass the budget of 10 only if successes count.
    assert [_login(server, f"guess-{i}").status_code for i in range(9)] == [401] * 9
    assert [_login(server).status_code for _ in range(3)] == [200] * 3
    assert [_login(server, f"guess-{i}").status_code for i in range(2)] == [401, 429]
    r = httpx.post(
        f"{server.url}/v1/auth/login",
        content=b'{"username": "alice", "password": "' + b"x" * 100_000 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413, r.text
    assert "error" in r.json()
