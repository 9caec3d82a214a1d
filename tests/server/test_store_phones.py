"""The phone parts of every Store (SQLite and PostGIS): fix extras, heartbeats, events."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from server.model import Event, FixIn, Seen
from server.store import Store, migrations, open_store
from tests.server.stored import count_fixes
from tests.server.test_store_contract import BASE, RECEIVED, add_bus, database_url, fix, store

__all__ = ["database_url", "store"]  # the contract suite's fixtures, on both stores


async def test_accuracy_battery_and_charge_are_kept_with_the_fix(store: Store) -> None:
    device_id = await add_bus(store)
    phone = FixIn(t=BASE, lat=45.1, lon=9.1, accuracy=4.5, battery=81.0, charge=True)
    bus = fix(1)  # a bus unit sends none of them
    result = await store.insert_fixes(device_id, [phone], RECEIVED)
    assert result.live is not None and result.live.fix == phone
    await store.insert_fixes(device_id, [bus], RECEIVED)
    assert await store.track(device_id, BASE, BASE + timedelta(minutes=1)) == [phone, bus]
    [live] = await store.live_positions()
    assert (live.fix.accuracy, live.fix.battery, live.fix.charge) == (None, None, None)
    # The grouped and the large (COPY) insert paths keep them too.
    many = [
        FixIn(t=BASE + timedelta(seconds=10 + i), lat=45.0, lon=9.0, battery=50.0, charge=False)
        for i in range(100)
    ]
    await store.insert_fixes(device_id, many, RECEIVED)
    stored = await store.track(device_id, BASE + timedelta(seconds=10), BASE + timedelta(hours=1))
    assert {(f.battery, f.charge) for f in stored} == {(50.0, False)}


async def test_a_heartbeat_marks_the_device_seen_and_stores_no_position(store: Store) -> None:
    phone = await add_bus(store, "phone-1")
    bus = await add_bus(store, "bus-2", route=None)
    await store.mark_seen(phone, Seen(RECEIVED, battery=64.0, charge=False))
    assert await count_fixes(store) == 0
    assert await store.live_positions() == []
    [seen] = await store.seen_devices()
    assert (seen.device_id, seen.name, seen.route, seen.in_service) == (phone, "phone-1", "7", True)
    assert seen.seen == Seen(RECEIVED, 64.0, False)
    # An older heartbeat (a resend arriving late) never replaces a newer one.
    await store.mark_seen(phone, Seen(RECEIVED - timedelta(minutes=1), battery=90.0))
    newer = Seen(RECEIVED + timedelta(minutes=1), battery=None, charge=None)
    await store.mark_seen(phone, newer)
    assert [s.seen for s in await store.seen_devices()] == [newer]
    # A device with both a fix and a heartbeat carries the heartbeat on its live position.
    await store.insert_fixes(phone, [fix(0)], RECEIVED)
    await store.insert_fixes(bus, [fix(0)], RECEIVED)
    live = {p.device_id: p for p in await store.live_positions()}
    assert live[phone].seen == newer and live[bus].seen is None
    with pytest.raises(LookupError):
        await store.mark_seen(424242, Seen(RECEIVED))


async def test_events_are_kept_once_and_read_by_time(store: Store) -> None:
    phone = await add_bus(store, "phone-1")
    other = await add_bus(store, "phone-2")
    sos = Event(phone, "sos", BASE, RECEIVED, lat=45.1, lon=9.1)
    stored = await store.add_event(sos)
    assert stored is not None and stored.id is not None
    assert stored == Event(phone, "sos", BASE, RECEIVED, 45.1, 9.1, id=stored.id)
    # The phone resends the same request when it missed the answer: stored once.
    assert await store.add_event(sos) is None
    later = await store.add_event(Event(phone, "sos", BASE + timedelta(minutes=5), RECEIVED))
    await store.add_event(Event(other, "sos", BASE + timedelta(minutes=1), RECEIVED))
    assert later is not None and (later.lat, later.lon) == (None, None)
    got = await store.events(phone, BASE - timedelta(hours=1), BASE + timedelta(hours=1))
    assert got == [stored, later]
    assert await store.events(phone, BASE + timedelta(seconds=1), BASE + timedelta(minutes=5)) == []
    with pytest.raises(LookupError):
        await store.add_event(Event(424242, "sos", BASE, RECEIVED))


async def test_a_database_of_the_previous_version_is_upgraded_keeping_its_rows(
    database_url: str | None, tmp_path: Path
) -> None:
    first_only = tmp_path / "v1"
    first_only.mkdir()
    # Build the schema of the version before (migration 0001 only) with a fix in it.
    if database_url is None:
        import sqlite3

        conn = sqlite3.connect(first_only / "bustracker.sqlite3")
        conn.executescript(migrations.available("sqlite")[0].sql())
        conn.execute("INSERT INTO devices (name, token_hash, created_at) VALUES ('bus-1', 'h', 0)")
        conn.execute(
            "INSERT INTO positions (device_id, fix_time, received_at, lat, lon)"
            " VALUES (1, 1, 2, 45.0, 9.0)"
        )
        conn.execute("PRAGMA user_version = 1")
        conn.commit()
        conn.close()
    else:
        import asyncpg  # type: ignore[import-untyped]

        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(migrations.available("postgis")[0].sql())
            await conn.execute(
                "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now());"
                "INSERT INTO schema_migrations (version, name) VALUES (1, '0001_init');"
                "INSERT INTO devices (name, token_hash) VALUES ('bus-1', 'h');"
                "INSERT INTO positions (device_id, fix_time, received_at, lat, lon, geog)"
                " VALUES (1, now(), now(), 45.0, 9.0, 'SRID=4326;POINT(9 45)');"
            )
        finally:
            await conn.close()
    store = open_store(database_url, first_only)
    assert await store.migrate() == [m.name for m in migrations.available("postgis")[1:]]
    await store.open()
    try:
        [device] = await store.list_devices()
        assert await count_fixes(store, device.id) == 1
        await store.mark_seen(device.id, Seen(RECEIVED, battery=10.0))
        assert [s.seen.battery for s in await store.seen_devices()] == [10.0]
    finally:
        await store.close()
