"""Operators run the fleet, over HTTP on both stores: enrollment codes, vehicles and what
they serve in the live views (REST and stream), per-device offline thresholds, the
wallboard summary, share links and the audit log (docs/fleet.md)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from server import enrollment
from server.shares import share_token_hash
from tests.server.live_client import access_token, fix, has_vehicle, live_ws, post_fixes
from tests.server.running import RunningServer, make_settings, server_per_store

CODE = re.compile(rf"^[{enrollment.ALPHABET}]{{4}}-[{enrollment.ALPHABET}]{{4}}$")


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgis", marks=pytest.mark.postgis)]
)
def fleet(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """One server per store for the module: each test adds devices of its own."""
    yield from server_per_store(request, tmp_path_factory, "fleet")


def call(server: RunningServer, method: str, path: str, role: str = "operator",
         **kwargs: Any) -> httpx.Response:  # fmt: skip
    return httpx.request(
        method, f"{server.url}{path}", headers=server.operator(role), timeout=30, **kwargs
    )  # type: ignore[arg-type]


def enroll(server: RunningServer, code: str) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/enroll", json={"code": code}, timeout=30)


def add_routes(server: RunningServer, *route_ids: str) -> None:
    """Operators' own routes: an assignment names one of the routes list (D41)."""
    for route_id in route_ids:
        r = call(server, "POST", "/v1/routes", json={"route_id": route_id, "short_name": route_id})
        assert r.status_code in (201, 409), r.text


def live_row(server: RunningServer, device_id: int) -> dict[str, Any]:
    rows = call(server, "GET", "/v1/fleet/live", "viewer").json()["vehicles"]
    (row,) = [r for r in rows if r["device_id"] == device_id]
    return row


def test_a_code_is_traded_once_for_a_token_that_replaces_the_old_one(
    fleet: RunningServer,
) -> None:
    device, old_token = fleet.add_device("enroll-1")
    first = call(fleet, "POST", f"/v1/devices/{device.id}/enrollment-code")
    assert first.status_code == 201, first.text
    assert CODE.match(first.json()["code"])
    expires = datetime.fromisoformat(first.json()["expires_at"])
    assert timedelta(hours=23, minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=24)
    # A new code replaces the unused one.
    second = call(fleet, "POST", f"/v1/devices/{device.id}/enrollment-code",
                  json={"expires_in": 600}).json()  # fmt: skip
    r = enroll(fleet, first.json()["code"])
    assert (r.status_code, r.json()["error"]) == (404, "unknown_code")
    r = enroll(fleet, second["code"].lower())
    assert r.status_code == 200, r.text
    assert (r.json()["device_id"], r.json()["name"]) == (device.id, "enroll-1")
    post_fixes(fleet.url, r.json()["token"], fix(45.47, 9.19))
    refused = httpx.post(f"{fleet.url}/v1/telemetry/location", json={"fixes": []},
                         headers={"Authorization": f"Bearer {old_token}"})  # fmt: skip
    assert refused.status_code == 401
    again = enroll(fleet, second["code"])
    assert (again.status_code, again.json()["error"]) == (409, "used_code")
    assert "used already" in again.json()["message"]
    # An expired code is told apart from a wrong one.
    canonical = "WXYA3467"
    then = datetime.now(UTC) - timedelta(days=1)
    fleet._with_store(lambda s: s.issue_enrollment_code(
        device.id, enrollment.code_hash(canonical), then, then + timedelta(hours=1)))  # fmt: skip
    expired = enroll(fleet, "WXYA-3467")
    assert (expired.status_code, expired.json()["error"]) == (410, "expired_code")
    bad = [
        call(fleet, "POST", "/v1/devices/99999/enrollment-code"),
        call(fleet, "POST", f"/v1/devices/{device.id}/enrollment-code", json={"ttl": 5}),
        httpx.post(f"{fleet.url}/v1/enroll", json={"kode": "x"}),
    ]
    assert [b.status_code for b in bad] == [404, 422, 422]
    assert "code: required string" in bad[2].json()["error"]


def test_guessing_codes_is_throttled(tmp_path_factory: pytest.TempPathFactory) -> None:
    server = RunningServer(make_settings(tmp_path_factory.mktemp("throttle"))).start()
    try:
        answers = [enroll(server, "AAAA-AAAA") for _ in range(11)]
    finally:
        server.stop()
    assert [a.status_code for a in answers] == [404] * 10 + [429]
    assert int(answers[-1].headers["Retry-After"]) >= 1


def test_vehicles_carry_their_unit_and_assignment_into_the_live_views(
    fleet: RunningServer,
) -> None:
    device, token = fleet.add_device("unit-7", route="old")
    add_routes(fleet, "R5", "R9")
    created = call(fleet, "POST", "/v1/vehicles", json={"label": "Bus 7", "plate": "AB 123"})
    assert created.status_code == 201, created.text
    bus = created.json()
    assert call(fleet, "POST", "/v1/vehicles", json={"label": "Bus 7"}).status_code == 409
    other = call(fleet, "POST", "/v1/vehicles", json={"label": "Bus 8"}).json()
    post_fixes(fleet.url, token, fix(45.47, 9.19))
    with live_ws(fleet.url, "/ws", token=access_token(fleet, "viewer")) as ws:
        ws.snapshot()
        r = call(fleet, "PATCH", f"/v1/vehicles/{bus['id']}",
                 json={"device_id": device.id, "route_id": "R5", "trip_id": "T1"})  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.json()["service_date"] == datetime.now(UTC).date().isoformat()
        # The stream sees the assignment without waiting for the next fix.
        ws.wait_for(has_vehicle("device_id", device.id, vehicle="Bus 7", route_id="R5",
                                route="R5", trip_id="T1", vehicle_id=bus["id"]))  # fmt: skip
        # The unit moves to another bus: the first one no longer has it.
        call(fleet, "PATCH", f"/v1/vehicles/{other['id']}", json={"device_id": device.id})
        ws.wait_for(has_vehicle("device_id", device.id, vehicle="Bus 8", route_id=None,
                                route="old"))  # fmt: skip
    listed = {v["id"]: v for v in call(fleet, "GET", "/v1/vehicles", "viewer").json()["vehicles"]}
    assert listed[bus["id"]]["device_id"] is None and listed[other["id"]]["device_id"] == device.id
    call(fleet, "PATCH", f"/v1/vehicles/{other['id']}", json={"route_id": "R9"})
    row = live_row(fleet, device.id)
    assert (row["vehicle"], row["vehicle_id"], row["route_id"], row["route"]) == (
        "Bus 8", other["id"], "R9", "R9")  # fmt: skip
    bad = [
        call(fleet, "PATCH", f"/v1/vehicles/{bus['id']}", json={"device_id": 99999}),
        call(fleet, "PATCH", f"/v1/vehicles/{bus['id']}", json={"colour": "red"}),
        call(fleet, "PATCH", f"/v1/vehicles/{bus['id']}", json={"route_id": "x" * 65}),
        call(fleet, "PATCH", f"/v1/vehicles/{bus['id']}", json={"route_id": "no-such-route"}),
        call(fleet, "PATCH", "/v1/vehicles/99999", json={"label": "Ghost"}),
        call(fleet, "POST", "/v1/vehicles", json={"plate": "no label"}),
    ]
    assert [b.status_code for b in bad] == [422, 422, 422, 422, 404, 422]
    assert "no route 'no-such-route'" in bad[3].json()["error"]
    assert "device_id: no device with id 99999" in bad[0].json()["error"]
    deleted = call(fleet, "DELETE", f"/v1/vehicles/{other['id']}")
    assert deleted.json() == {"id": other["id"], "deleted": True}
    assert live_row(fleet, device.id)["vehicle"] is None


def test_the_agent_object_and_an_own_offline_threshold_show_in_the_views(
    fleet: RunningServer,
) -> None:
    quick, quick_token = fleet.add_device("quick-1")
    normal, normal_token = fleet.add_device("normal-1")
    r = call(fleet, "PATCH", f"/v1/devices/{quick.id}", json={"offline_after": 1})
    assert r.status_code == 200 and r.json()["offline_after_s"] == 1
    for token in (quick_token, normal_token):
        httpx.post(f"{fleet.url}/v1/telemetry/location",
                   json={"fixes": [fix(45.47, 9.19)], "agent": {"version": "1.4.2", "backlog": 3}},
                   headers={"Authorization": f"Bearer {token}"}).raise_for_status()  # fmt: skip
    row = live_row(fleet, normal.id)
    assert (row["agent_version"], row["backlog"], row["offline_after_s"]) == ("1.4.2", 3, 120)
    deadline = datetime.now(UTC) + timedelta(seconds=15)
    while live_row(fleet, quick.id)["state"] != "offline":
        assert datetime.now(UTC) < deadline, "the 1 s threshold never took the bus offline"
    assert live_row(fleet, quick.id)["offline_after_s"] == 1
    assert live_row(fleet, normal.id)["state"] == "online"  # OFFLINE_AFTER is 120 s
    assert call(fleet, "PATCH", f"/v1/devices/{quick.id}",
                json={"offline_after": 0}).status_code == 422  # fmt: skip
    reset = call(fleet, "PATCH", f"/v1/devices/{quick.id}", json={"offline_after": None})
    assert reset.json()["offline_after_s"] is None
    assert live_row(fleet, quick.id)["state"] == "online"


def test_the_summary_names_auth_errors_and_growing_backlogs(fleet: RunningServer) -> None:
    revoked, revoked_token = fleet.add_device("revoked-1")
    growing, _ = fleet.add_device("growing-1")
    now = datetime.now(UTC)
    from server.model import AgentReport

    for minutes, backlog in ((3, 10), (2, 40), (0, 90)):
        at = now - timedelta(minutes=minutes)
        fleet._with_store(lambda s, at=at, b=backlog: s.record_agent(
            growing.id, AgentReport("1.0", b), at, at - timedelta(minutes=1)))  # fmt: skip
    post_fixes(fleet.url, revoked_token, fix(45.47, 9.19), fix(45.47, 9.19, age_s=5))
    assert call(fleet, "POST", f"/v1/devices/{revoked.id}/revoke", "admin").status_code == 200
    refused = httpx.post(f"{fleet.url}/v1/telemetry/location", json={"fixes": []},
                         headers={"Authorization": f"Bearer {revoked_token}"})  # fmt: skip
    assert refused.status_code == 401
    for n in range(3):  # never heard from: offline
        fleet.add_device(f"silent-{n}")
    summary = call(fleet, "GET", "/v1/fleet/summary", "viewer").json()
    failing = [e["device_id"] for e in summary["auth_errors"]]
    assert revoked.id in failing  # (an earlier test's rotated-away token may be listed too)
    assert growing.id not in failing
    assert {"device_id": growing.id, "name": "growing-1", "backlog": 90, "previous": 40} in (
        summary["growing_backlogs"]
    )
    assert summary["fixes_per_minute"] >= 2
    states = ("online", "no_gps", "offline", "out_of_service")
    assert sum(summary[s] for s in states) == summary["vehicles"]
    assert summary["offline"] >= 4  # growing-1 and the silent ones
    in_service = summary["vehicles"] - summary["out_of_service"]
    assert summary["offline_share"] == round(summary["offline"] / in_service, 4)
    assert summary["offline_alert"] is True
    row = live_row(fleet, revoked.id)
    assert row["auth_error_at"] is not None  # the operator views show it too


def test_a_share_link_shows_one_vehicle_until_revoked_or_expired(fleet: RunningServer) -> None:
    device, token = fleet.add_device("shared-1")
    add_routes(fleet, "R1")
    bus = call(fleet, "POST", "/v1/vehicles", json={"label": "Shared bus"}).json()
    call(fleet, "PATCH", f"/v1/vehicles/{bus['id']}", json={"device_id": device.id,
                                                             "route_id": "R1"})  # fmt: skip
    post_fixes(fleet.url, token, fix(45.47, 9.19))
    made = call(fleet, "POST", f"/v1/vehicles/{bus['id']}/share")
    assert made.status_code == 201, made.text
    share = made.json()
    assert share["url"] == f"/share/{share['token']}"
    expires = datetime.fromisoformat(share["expires_at"])
    assert timedelta(hours=23, minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=24)
    deadline = datetime.now(UTC) + timedelta(seconds=15)
    while True:  # the hub holds the position a moment after the answer
        seen = httpx.get(f"{fleet.url}/v1/shared/{share['token']}")
        if seen.json().get("lat") is not None or datetime.now(UTC) > deadline:
            break
    assert seen.status_code == 200
    view = seen.json()
    assert (view["label"], view["route_id"], view["lat"], view["state"]) == (
        "Shared bus", "R1", 45.47, "online")  # fmt: skip
    assert "device_id" not in view and "name" not in view
    listed = call(fleet, "GET", f"/v1/vehicles/{bus['id']}/shares").json()["shares"]
    assert [(s["id"], s["active"]) for s in listed] == [(share["id"], True)]
    assert "token" not in listed[0]
    assert call(fleet, "DELETE", f"/v1/shares/{share['id']}").json()["active"] is False
    assert httpx.get(f"{fleet.url}/v1/shared/{share['token']}").status_code == 404
    then = datetime.now(UTC) - timedelta(days=2)
    fleet._with_store(lambda s: s.add_share(bus["id"], share_token_hash("old-link"), "ops", then,
                                            then + timedelta(days=1)))  # fmt: skip
    gone = httpx.get(f"{fleet.url}/v1/shared/old-link")
    assert gone.status_code == 410 and gone.json()["error"] == "this share link has expired"
    assert httpx.get(f"{fleet.url}/v1/shared/never-made").status_code == 404


def test_the_audit_log_says_who_did_what_newest_first(fleet: RunningServer) -> None:
    device, _ = fleet.add_device("audited-1")
    # Twice: the first is the page before the newest four, whatever ran before this test.
    call(fleet, "POST", f"/v1/devices/{device.id}/rotate", "admin")
    call(fleet, "POST", f"/v1/devices/{device.id}/rotate", "admin")
    call(fleet, "PATCH", f"/v1/devices/{device.id}", json={"in_service": False})
    bus = call(fleet, "POST", "/v1/vehicles", json={"label": "Audited bus"}).json()
    call(fleet, "PATCH", f"/v1/vehicles/{bus['id']}", json={"device_id": device.id})
    entries = call(fleet, "GET", "/v1/audit?limit=4", "admin").json()
    assert [(e["action"], e["actor"], e["target_type"]) for e in entries] == [
        ("vehicle.assign", "op-operator", "vehicle"),
        ("vehicle.create", "op-operator", "vehicle"),
        ("device.update", "op-operator", "device"),
        ("device.rotate", "op-admin", "device"),
    ]
    assert entries[0]["detail"] == {"device_id": device.id}
    older = call(fleet, "GET", f"/v1/audit?limit=1&before={entries[-1]['id']}", "admin").json()
    assert len(older) == 1 and older[0]["id"] < entries[-1]["id"]
    assert call(fleet, "GET", "/v1/audit?limit=0", "admin").status_code == 422


def test_the_audit_log_lists_one_records_or_one_actors_actions(fleet: RunningServer) -> None:
    first, _ = fleet.add_device("audited-2")
    second, _ = fleet.add_device("audited-3")
    for device in (first, second, first):
        call(fleet, "POST", f"/v1/devices/{device.id}/rotate", "admin")
    call(fleet, "PATCH", f"/v1/devices/{first.id}", json={"in_service": False})
    on_first = f"/v1/audit?target_type=device&target_id={first.id}"
    entries = call(fleet, "GET", on_first, "admin").json()
    assert [(e["action"], e["actor"]) for e in entries] == [
        ("device.update", "op-operator"), ("device.rotate", "op-admin"),
        ("device.rotate", "op-admin")]  # fmt: skip
    rotations = call(fleet, "GET", f"{on_first}&action=device.rotate&actor=op-admin", "admin")
    assert [e["id"] for e in rotations.json()] == [e["id"] for e in entries[1:]]
    # Paging keeps the filter: the page before the newest rotation holds the older one only.
    older = call(fleet, "GET", f"{on_first}&action=device.rotate&before={entries[1]['id']}",
                 "admin").json()  # fmt: skip
    assert [e["id"] for e in older] == [entries[2]["id"]]
    assert call(fleet, "GET", "/v1/audit?actor=nobody-at-all", "admin").json() == []
    refused = call(fleet, "GET", "/v1/audit?actor=" + "x" * 201, "admin")
    assert refused.status_code == 422 and "actor" in refused.json()["error"]
    assert call(fleet, "GET", "/v1/audit?action=a%00b", "admin").status_code == 422
    # A time range: everything above happened within the last minute and before now.
    now = datetime.now(UTC)
    stamp = lambda t: t.isoformat().replace("+00:00", "Z")  # noqa: E731
    recent = f"{on_first}&from={stamp(now - timedelta(minutes=1))}&to={stamp(now)}"
    assert [e["id"] for e in call(fleet, "GET", recent, "admin").json()] == [
        e["id"] for e in entries
    ]
    since_now = call(fleet, "GET", f"{on_first}&from={stamp(now)}", "admin")
    assert since_now.json() == []
    backwards = call(fleet, "GET", f"/v1/audit?from={stamp(now)}&to={stamp(now)}", "admin")
    assert (backwards.status_code, backwards.json()) == (422, {"error": "from: must be before to"})
    bad = call(fleet, "GET", "/v1/audit?to=yesterday", "admin")
    assert bad.status_code == 422 and bad.json()["error"].startswith("to: "), bad.text


def test_account_and_route_changes_are_in_the_audit_log(fleet: RunningServer) -> None:
    account = {"username": "audited-user", "password": "pw-audited-123", "role": "viewer"}
    user = call(fleet, "POST", "/v1/users", "admin", json=account)
    assert user.status_code == 201, user.text
    uid = user.json()["id"]
    call(fleet, "PATCH", f"/v1/users/{uid}", "admin", json={"role": "operator"})
    call(fleet, "PATCH", f"/v1/users/{uid}", "admin", json={"password": "pw-audited-456"})
    assert call(fleet, "DELETE", f"/v1/users/{uid}", "admin").status_code == 204
    on_user = call(fleet, "GET", f"/v1/audit?target_type=user&target_id={uid}", "admin").json()
    assert [(e["action"], e["actor"], e["detail"]) for e in on_user] == [
        ("user.delete", "op-admin", {"username": "audited-user"}),
        ("user.update", "op-admin", {"username": "audited-user", "password": "set"}),
        ("user.update", "op-admin", {"username": "audited-user", "role": "operator"}),
        ("user.create", "op-admin", {"username": "audited-user", "role": "viewer"}),
    ]
    assert "pw-audited" not in str(on_user)  # never a password
    made = call(fleet, "POST", "/v1/routes", json={"route_id": "AUD1", "short_name": "A1"})
    assert made.status_code == 201, made.text
    call(fleet, "PATCH", "/v1/routes/AUD1", json={"long_name": "Audited line"})
    assert call(fleet, "DELETE", "/v1/routes/AUD1").status_code == 204
    on_route = call(fleet, "GET", "/v1/audit?target_type=route&target_id=AUD1", "admin").json()
    assert [(e["action"], e["actor"], e["detail"]) for e in on_route] == [
        ("route.delete", "op-operator", {"short_name": "A1"}),
        ("route.update", "op-operator", {"long_name": "Audited line"}),
        ("route.create", "op-operator", {"short_name": "A1"}),
    ]
