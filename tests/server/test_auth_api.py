"""Operator sign-in and tokens over real HTTP."""

from __future__ import annotations

import time

import httpx

from server.auth import Principal, TokenIssuer
from tests.server.running import RunningServer


def test_login_refresh_and_use(any_server: RunningServer) -> None:
    any_server.add_user("alice", "s3cret-password", "operator")
    r = httpx.post(
        f"{any_server.url}/v1/auth/login", json={"username": "alice", "password": "s3cret-password"}
    )
    assert r.status_code == 200, r.text
    tokens = r.json()
    assert {"access_token", "refresh_token"} <= tokens.keys()
    live = httpx.get(
        f"{any_server.url}/v1/fleet/live",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    assert live.status_code == 200
    # A refresh token is not an access token, and vice versa.
    r = httpx.get(
        f"{any_server.url}/v1/fleet/live",
        headers={"Authorization": f"Bearer {tokens['refresh_token']}"},
    )
    assert r.status_code == 401
    r = httpx.post(
        f"{any_server.url}/v1/auth/refresh", json={"refresh_token": tokens["access_token"]}
    )
    assert r.status_code == 401
    r = httpx.post(
        f"{any_server.url}/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert r.status_code == 200
    assert r.json()["access_token"]


def test_wrong_password_unknown_user_and_bad_bodies(server: RunningServer) -> None:
    server.add_user("alice", "s3cret-password", "viewer")
    for creds in (
        {"username": "alice", "password": "nope-nope"},
        {"username": "mallory", "password": "s3cret-password"},
    ):
        r = httpx.post(f"{server.url}/v1/auth/login", json=creds)
        assert r.status_code == 401
        assert r.json() == {"error": "wrong username or password"}
    r = httpx.post(f"{server.url}/v1/auth/login", json={"username": "alice"})
    assert r.status_code == 422 and r.json()["error"] == "password: required string"
    r = httpx.post(f"{server.url}/v1/auth/login", content=b"{nope")
    assert r.status_code == 422


def test_login_is_throttled(server: RunningServer) -> None:
    server.add_user("alice", "s3cret-password", "viewer")
    codes = [
        httpx.post(
            f"{server.url}/v1/auth/login", json={"username": "alice", "password": f"guess-{i}"}
        ).status_code
        for i in range(11)
    ]
    assert codes[:10] == [401] * 10
    assert codes[10] == 429
    # Even the right password waits now: that is what stops guessing.
    r = httpx.post(
        f"{server.url}/v1/auth/login", json={"username": "alice", "password": "s3cret-password"}
    )
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) >= 1


def test_expired_and_forged_tokens(server: RunningServer) -> None:
    user = server.add_user("alice", "s3cret-password", "admin")
    principal = Principal(user.id, user.username, user.role)
    issuer = TokenIssuer(server.settings.auth.jwt_secret, 900, 3600)
    expired = issuer.issue(principal, "access", now=time.time() - 3600)
    r = httpx.get(f"{server.url}/v1/fleet/live", headers={"Authorization": f"Bearer {expired}"})
    assert r.status_code == 401 and r.json()["error"] == "token expired"
    forged = TokenIssuer("another-secret-" + "y" * 40, 900, 3600).issue(principal, "access")
    r = httpx.get(f"{server.url}/v1/fleet/live", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401 and r.json()["error"] == "token invalid"
    r = httpx.get(f"{server.url}/v1/fleet/live")
    assert r.status_code == 401 and r.json()["error"] == "missing bearer token"
