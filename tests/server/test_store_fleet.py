"""The fleet parts of every Store (SQLite and PostGIS): enrollment codes, vehicles and what
the live views read of them, agents' reports, refused tokens, share links, the audit log."""

from __future__ import annotations

from datetime import timedelta

import pytest

from server.model import AgentReport, AuditEntry, AuditMatch
from server.store import Conflict, Store
from server.store.base import EnrollmentRefused
from tests.server.test_store_contract import BASE, RECEIVED, add_bus, database_url, fix, store

__all__ = ["database_url", "store"]  # the contract suite's fixtures, on both stores

NOW = RECEIVED


async def test_a_code_is_redeemed_once_for_a_new_token(store: Store) -> None:
    device_id = await add_bus(store)
    assert await store.issue_enrollment_code(device_id, "code-1", NOW, NOW + timedelta(hours=1))
    device = await store.redeem_enrollment_code("code-1", "new-token", NOW)
    assert device.id == device_id and device.active
    assert await store.device_by_token_hash("new-token") == device
    assert await store.device_by_token_hash("hash-of-bus-1") is None  # the old one is retired
    with pytest.raises(EnrollmentRefused) as used:
        await store.redeem_enrollment_code("code-1", "other-token", NOW)
    assert used.value.reason == "used_code"
    assert await store.device_by_token_hash("other-token") is None
    with pytest.raises(EnrollmentRefused) as unknown:
        await store.redeem_enrollment_code("never-issued", "t", NOW)
    assert unknown.value.reason == "unknown_code"


async def test_an_expired_or_replaced_code_is_refused_and_changes_nothing(store: Store) -> None:
    device_id = await add_bus(store)
    await store.issue_enrollment_code(device_id, "old", NOW, NOW + timedelta(hours=1))
    # A new code replaces the unused one: the old one is unknown from then on.
    await store.issue_enrollment_code(device_id, "new", NOW, NOW + timedelta(hours=1))
    with pytest.raises(EnrollmentRefused) as replaced:
        await store.redeem_enrollment_code("old", "t1", NOW)
    assert replaced.value.reason == "unknown_code"
    with pytest.raises(EnrollmentRefused) as expired:
        await store.redeem_enrollment_code("new", "t2", NOW + timedelta(hours=1))
    assert expired.value.reason == "expired_code"
    assert (await store.device_by_token_hash("hash-of-bus-1")) is not None
    assert not await store.issue_enrollment_code(device_id + 99, "x", NOW, NOW)


async def test_calls_with_a_revoked_or_rotated_away_token_mark_the_device(store: Store) -> None:
    rotated = await add_bus(store, "bus-1")
    revoked = await add_bus(store, "bus-2")
    await store.set_device_token(rotated, "hash-2nd")
    await store.revoke_device(revoked)
    assert await store.note_auth_error("hash-of-bus-1", NOW) == rotated
    assert await store.note_auth_error("hash-of-bus-2", NOW) == revoked
    assert await store.note_auth_error("hash-2nd", NOW) is None  # the current token is fine
    assert await store.note_auth_error("never-issued", NOW) is None
    device = await store.get_device(rotated)
    assert device is not None and device.auth_error_at == NOW


async def test_vehicles_hold_one_unit_each_and_the_live_views_read_them(store: Store) -> None:
    device_id = await add_bus(store, route="7")
    a = await store.add_vehicle("Bus 17", "AB-123")
    b = await store.add_vehicle("Bus 18", None)
    with pytest.raises(Conflict):
        await store.add_vehicle("Bus 17", None)
    await store.update_vehicle(a.id, {"device_id": device_id, "route_id": "R1", "trip_id": "T9"})
    moved = await store.update_vehicle(b.id, {"device_id": device_id})
    assert moved is not None and moved.device_id == device_id
    assert (await store.get_vehicle(a.id)).device_id is None  # type: ignore[union-attr]
    with pytest.raises(LookupError):
        await store.update_vehicle(a.id, {"device_id": device_id + 99})
    await store.update_vehicle(b.id, {"route_id": "R2", "service_date": "2026-12-02"})
    result = await store.insert_fixes(device_id, [fix(0)], RECEIVED)
    assert result.live is not None
    for live in (result.live, (await store.live_positions())[0]):
        assert (live.fleet.vehicle, live.fleet.vehicle_id, live.fleet.route_id) == (
            "Bus 18",
            b.id,
            "R2",
        )
        assert live.route == "R2"  # the assignment's route is the device's route (D41)
    view = await store.device_view(device_id)
    assert view is not None and view.fleet.vehicle == "Bus 18"
    assert await store.delete_vehicle(b.id)
    view = await store.device_view(device_id)
    assert view is not None and (view.fleet.vehicle, view.route) == (None, "7")
    assert [v.label for v in await store.list_vehicles()] == ["Bus 17"]


async def test_offline_threshold_and_agent_reports_reach_the_live_position(store: Store) -> None:
    device_id = await add_bus(store)
    device = await store.set_offline_after(device_id, 300)
    assert device is not None and device.offline_after_s == 300
    t0 = NOW - timedelta(minutes=3)
    await store.record_agent(device_id, AgentReport("1.2.0", 10), t0, t0 - timedelta(minutes=1))
    t1 = NOW - timedelta(minutes=2)
    await store.record_agent(device_id, AgentReport("1.2.0", 25), t1, t1 - timedelta(minutes=1))
    t2 = NOW
    await store.record_agent(device_id, AgentReport("1.2.1", 40), t2, t2 - timedelta(minutes=1))
    device = await store.get_device(device_id)
    assert device is not None
    assert (device.agent_version, device.backlog, device.agent_at) == ("1.2.1", 40, t2)
    assert device.backlog_base == 25  # the report before, once the base was a minute old
    result = await store.insert_fixes(device_id, [fix(0)], RECEIVED)
    assert result.live is not None
    assert (result.live.fleet.offline_after_s, result.live.fleet.backlog) == (300, 40)
    assert await store.set_offline_after(device_id, None) is not None
    assert (await store.live_positions())[0].fleet.offline_after_s is None


async def test_fixes_between_counts_every_devices_fixes_in_the_range(store: Store) -> None:
    one, two = await add_bus(store, "bus-1"), await add_bus(store, "bus-2")
    await store.insert_fixes(one, [fix(0), fix(30), fix(59)], RECEIVED)
    await store.insert_fixes(two, [fix(10), fix(90)], RECEIVED)
    assert await store.fixes_between(BASE, BASE + timedelta(seconds=60)) == 4


async def test_share_links_and_the_audit_log(store: Store) -> None:
    vehicle = await store.add_vehicle("Bus 17", None)
    share = await store.add_share(vehicle.id, "share-hash", "ops", NOW, NOW + timedelta(days=1))
    assert await store.share_by_token_hash("share-hash") == share
    with pytest.raises(LookupError):
        await store.add_share(vehicle.id + 9, "h2", "ops", NOW, NOW)
    revoked = await store.revoke_share(share.id, NOW)
    assert revoked is not None and revoked.revoked_at == NOW
    again = await store.revoke_share(share.id, NOW + timedelta(hours=1))
    assert again is not None and again.revoked_at == NOW  # the first revoke's time stays
    assert [s.id for s in await store.list_shares(vehicle.id)] == [share.id]
    entries = [
        await store.add_audit(AuditEntry(NOW, "ops", f"a{i}", "vehicle", "1", {"n": i}))
        for i in range(3)
    ]
    newest = await store.audit_entries(2)
    assert [e.action for e in newest] == ["a2", "a1"] and newest[0].detail == {"n": 2}
    assert [e.action for e in await store.audit_entries(10, before=entries[1].id)] == ["a0"]
    other = await store.add_audit(AuditEntry(NOW, "olga", "a0", "device", "7", {}))
    by_olga = await store.audit_entries(10, match=AuditMatch(actor="olga"))
    assert [e.id for e in by_olga] == [other.id]
    a0 = await store.audit_entries(10, match=AuditMatch(action="a0"))
    assert [e.id for e in a0] == [other.id, entries[0].id]
    on_vehicle_1 = AuditMatch(target_type="vehicle", target_id="1")
    assert [e.action for e in await store.audit_entries(1, match=on_vehicle_1)] == ["a2"]
    assert await store.audit_entries(10, match=AuditMatch(actor="olga", action="a1")) == []
    # A time range: from its start, up to just before its end.
    later = await store.add_audit(
        AuditEntry(NOW + timedelta(hours=2), "olga", "a9", "user", "1", {})
    )
    hour = timedelta(hours=1)
    assert [e.id for e in await store.audit_entries(10, match=AuditMatch(since=NOW + hour))] == [
        later.id
    ]
    until_now = AuditMatch(actor="olga", until=NOW + 2 * hour)
    assert [e.id for e in await store.audit_entries(10, match=until_now)] == [other.id]
    exactly = AuditMatch(since=NOW, until=NOW + timedelta(microseconds=1))
    assert len(await store.audit_entries(10, match=exactly)) == 4
    assert await store.audit_entries(10, match=AuditMatch(until=NOW)) == []
