"""One contract for every Store: the same tests run on SQLite and on PostGIS.

Registry and Positions here; heartbeats and events in test_store_phones.py,
Maintenance (partitions, retention, pool and group figures) in
test_store_maintenance.py, on the same two stores.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from server.model import FixIn
from server.store import Conflict, Store, StoreUnavailable, open_store
from server.store.postgis import PostgisStore
from server.store.sqlite import SqliteStore
from tests.server.stored import count_fixes
from tests.services import free_port

# Recent times, so on PostGIS the fixes land in real daily partitions, not the default.
BASE = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
RECEIVED = BASE + timedelta(minutes=30)


def fix(seconds: float, lat: float = 45.4651, lon: float = 9.1909) -> FixIn:
    return FixIn(t=BASE + timedelta(seconds=seconds), lat=lat, lon=lon)


@pytest.fixture(params=["sqlite", pytest.param("postgis", marks=pytest.mark.postgis)])
def database_url(request: pytest.FixtureRequest) -> str | None:
    # A sync fixture: getfixturevalue may not set up an async fixture from a running loop.
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("postgis_url")
    return url


@pytest.fixture
async def store(database_url: str | None, tmp_path: Path) -> AsyncIterator[Store]:
    opened = open_store(database_url, tmp_path / "data")
    await opened.open()
    yield opened
    await opened.close()


async def add_bus(store: Store, name: str = "bus-1", route: str | None = "7") -> int:
    return (await store.add_device(name, f"hash-of-{name}", route=route)).id


# installation values -----------------------------------------------------------


async def test_installation_value_is_the_first_callers_for_everyone(
    store: Store, database_url: str | None, tmp_path: Path
) -> None:
    assert await store.installation_value("public_id_key", "first") == "first"
    assert await store.installation_value("public_id_key", "second") == "first"
    # Another process on the same data (a replica, or this one restarted) gets it too.
    other = open_store(database_url, tmp_path / "data")
    await other.open()
    try:
        assert await other.installation_value("public_id_key", "third") == "first"
        assert await other.installation_value("another", "x") == "x"
    finally:
        await other.close()


# backend selection -------------------------------------------------------------


def test_open_store_picks_backend_by_url(tmp_path: Path) -> None:
    assert isinstance(open_store(None, tmp_path / "a"), SqliteStore)
    assert (tmp_path / "a").is_dir()
    sqlite = open_store("", tmp_path / "b")
    assert isinstance(sqlite, SqliteStore)
    assert sqlite.path == tmp_path / "b" / "bustracker.sqlite3"
    assert isinstance(open_store("postgresql://u@h/db", tmp_path), PostgisStore)
    assert isinstance(open_store("postgres://u@h/db", tmp_path), PostgisStore)
    with pytest.raises(ValueError, match="postgresql://"):
        open_store("mysql://u@h/db", tmp_path)


# devices -----------------------------------------------------------------------


async def test_device_add_and_lookup(store: Store) -> None:
    one = await store.add_device("bus-1", "h1", route="7")
    two = await store.add_device("bus-2", "h2")
    assert (one.name, one.route, one.active, one.in_service) == ("bus-1", "7", True, True)
    assert two.route is None and two.id != one.id
    assert await store.device_by_token_hash("h1") == one
    assert await store.device_by_token_hash("nope") is None
    assert await store.get_device(two.id) == two
    assert await store.get_device(two.id + 1000) is None
    assert await store.list_devices() == [one, two]


async def test_device_name_or_token_taken_is_conflict(store: Store) -> None:
    await store.add_device("bus-1", "h1")
    with pytest.raises(Conflict):
        await store.add_device("bus-1", "h-other")
    with pytest.raises(Conflict):
        await store.add_device("bus-2", "h1")
    assert len(await store.list_devices()) == 1


async def test_rotate_token_retires_the_old_one(store: Store) -> None:
    device_id = await add_bus(store)
    assert await store.set_device_token(device_id, "new-hash")
    assert await store.device_by_token_hash("hash-of-bus-1") is None
    found = await store.device_by_token_hash("new-hash")
    assert found is not None and found.id == device_id
    assert not await store.set_device_token(device_id + 1000, "other")


async def test_revoke_hides_the_device_from_token_lookup(store: Store) -> None:
    device_id = await add_bus(store)
    assert await store.revoke_device(device_id)
    assert await store.device_by_token_hash("hash-of-bus-1") is None
    revoked = await store.get_device(device_id)
    assert revoked is not None and not revoked.active
    assert not await store.revoke_device(device_id + 1000)
    # Issuing a new token is issuing a fresh credential: the device is active again.
    assert await store.set_device_token(device_id, "fresh")
    again = await store.device_by_token_hash("fresh")
    assert again is not None and again.active


async def test_update_device_changes_only_given_fields(store: Store) -> None:
    device_id = await add_bus(store, route="7")
    updated = await store.update_device(device_id, in_service=False)
    assert updated is not None and (updated.in_service, updated.route) == (False, "7")
    updated = await store.update_device(device_id, route="12")
    assert updated is not None and (updated.in_service, updated.route) == (False, "12")
    assert await store.get_device(device_id) == updated
    assert await store.update_device(device_id + 1000, route="1") is None


# users -------------------------------------------------------------------------


async def test_users(store: Store) -> None:
    admin = await store.add_user("ada", "argon2-hash", "admin")
    assert (admin.username, admin.password_hash, admin.role) == ("ada", "argon2-hash", "admin")
    assert await store.user_by_name("ada") == admin
    assert await store.get_user(admin.id) == admin
    assert await store.user_by_name("bob") is None
    assert await store.get_user(admin.id + 1000) is None
    with pytest.raises(Conflict):
        await store.add_user("ada", "other", "viewer")


# telemetry ---------------------------------------------------------------------


async def test_same_batch_twice_is_all_duplicates(store: Store) -> None:
    device_id = await add_bus(store)
    batch = [fix(0), fix(5), fix(10)]
    first = await store.insert_fixes(device_id, batch, RECEIVED)
    assert (first.accepted, first.duplicates) == (3, 0)
    second = await store.insert_fixes(device_id, batch, RECEIVED)
    assert (second.accepted, second.duplicates, second.live) == (0, 3, None)
    assert await count_fixes(store, device_id) == 3


async def test_duplicates_within_a_batch_count_and_first_wins(store: Store) -> None:
    device_id = await add_bus(store)
    batch = [fix(0, lat=1.0), fix(5), fix(0, lat=2.0), fix(5)]
    result = await store.insert_fixes(device_id, batch, RECEIVED)
    assert (result.accepted, result.duplicates) == (2, 2)
    stored = await store.track(device_id, BASE, BASE + timedelta(minutes=1))
    assert [f.lat for f in stored] == [1.0, 45.4651]


async def test_concurrent_retries_store_each_fix_once(store: Store) -> None:
    device_id = await add_bus(store)
    batch = [fix(s) for s in range(50)]
    results = await asyncio.gather(
        *(store.insert_fixes(device_id, batch, RECEIVED) for _ in range(4))
    )
    assert sum(r.accepted for r in results) == 50
    assert sum(r.duplicates for r in results) == 150
    assert await count_fixes(store, device_id) == 50


async def test_large_batches_keep_every_guarantee(store: Store) -> None:
    # Big enough for PostGIS's COPY path: in-batch duplicates (first wins), exact
    # counts on a retry, last position only forward, unknown device refused.
    device_id = await add_bus(store)
    batch = [fix(s, lat=1.0) for s in range(200)] + [fix(s, lat=2.0) for s in range(0, 200, 2)]
    first = await store.insert_fixes(device_id, batch, RECEIVED)
    assert (first.accepted, first.duplicates) == (200, 100)
    assert first.live is not None and first.live.fix == fix(199, lat=1.0)
    stored = await store.track(device_id, BASE, BASE + timedelta(hours=1))
    assert len(stored) == 200 and {f.lat for f in stored} == {1.0}
    again = await store.insert_fixes(device_id, batch, RECEIVED)
    assert (again.accepted, again.duplicates, again.live) == (0, 300, None)
    older = await store.insert_fixes(device_id, [fix(-s) for s in range(1, 101)], RECEIVED)
    assert (older.accepted, older.live) == (100, None)
    [live] = await store.live_positions()
    assert live.fix.t == BASE + timedelta(seconds=199)
    with pytest.raises(LookupError):
        await store.insert_fixes(424242, batch, RECEIVED)
    assert await count_fixes(store, device_id) == 300
    assert (await store.insert_fixes(device_id, [fix(500)], RECEIVED)).accepted == 1


async def test_empty_batch(store: Store) -> None:
    device_id = await add_bus(store)
    result = await store.insert_fixes(device_id, [], RECEIVED)
    assert (result.accepted, result.duplicates, result.live) == (0, 0, None)


async def test_unknown_device_is_a_lookup_error(store: Store) -> None:
    with pytest.raises(LookupError):
        await store.insert_fixes(424242, [fix(0)], RECEIVED)


async def test_live_position_never_moves_back(store: Store) -> None:
    device_id = await add_bus(store, route="7")
    moved = await store.insert_fixes(
        device_id, [fix(5), fix(20, lat=1.5, lon=2.5), fix(10)], RECEIVED
    )
    assert moved.live is not None
    assert (moved.live.device_id, moved.live.name, moved.live.route) == (device_id, "bus-1", "7")
    assert moved.live.fix == fix(20, lat=1.5, lon=2.5)
    assert moved.live.received_at == RECEIVED

    backlog = await store.insert_fixes(device_id, [fix(1), fix(15)], RECEIVED + timedelta(1))
    assert (backlog.accepted, backlog.live) == (2, None)
    [live] = await store.live_positions()
    assert live.fix.t == BASE + timedelta(seconds=20) and live.received_at == RECEIVED

    newer = await store.insert_fixes(device_id, [fix(21)], RECEIVED + timedelta(2))
    assert newer.live is not None and newer.live.fix.t == BASE + timedelta(seconds=21)
    [live] = await store.live_positions()
    assert live.fix.t == BASE + timedelta(seconds=21)


async def test_track_is_a_half_open_range_oldest_first(store: Store) -> None:
    device_id = await add_bus(store)
    other = await add_bus(store, "bus-2")
    await store.insert_fixes(device_id, [fix(s) for s in (30, 0, 20, 10, 40)], RECEIVED)
    await store.insert_fixes(other, [fix(15)], RECEIVED)
    got = await store.track(device_id, BASE + timedelta(seconds=10), BASE + timedelta(seconds=40))
    assert [f.t for f in got] == [BASE + timedelta(seconds=s) for s in (10, 20, 30)]
    assert await store.track(device_id, BASE - timedelta(hours=2), BASE) == []


async def test_live_positions_reflect_device_changes(store: Store) -> None:
    first = await add_bus(store, "bus-1", route="7")
    second = await add_bus(store, "bus-2", route=None)
    await add_bus(store, "bus-3")  # never reported: has no live position
    await store.insert_fixes(second, [fix(1, lat=10.0, lon=20.0)], RECEIVED)
    await store.insert_fixes(first, [fix(2)], RECEIVED)
    await store.update_device(second, in_service=False, route="12")
    live = await store.live_positions()
    assert [p.device_id for p in live] == [first, second]
    assert (live[1].name, live[1].route, live[1].in_service) == ("bus-2", "12", False)
    assert (live[1].fix.lat, live[1].fix.lon) == (10.0, 20.0)


async def test_nearby_is_ordered_by_distance(store: Store) -> None:
    # Along a meridian one degree of latitude is ~111 km, so 0.01 deg is ~1.1 km.
    far = await add_bus(store, "far")
    near = await add_bus(store, "near")
    mid = await add_bus(store, "mid")
    away = await add_bus(store, "away")
    for device_id, dlat in ((far, 0.020), (near, 0.001), (mid, -0.010), (away, 1.0)):
        await store.insert_fixes(device_id, [fix(0, lat=45.0 + dlat, lon=9.0)], RECEIVED)
    found = await store.nearby(45.0, 9.0, 3_000)
    assert [p.device_id for p in found] == [near, mid, far]
    assert [p.device_id for p in await store.nearby(45.0, 9.0, 500)] == [near]
    assert await store.nearby(-45.0, -9.0, 10_000) == []


async def test_times_round_trip_to_the_microsecond(store: Store) -> None:
    device_id = await add_bus(store)
    t = BASE.replace(microsecond=123_457)
    cest = timezone(timedelta(hours=2))
    full = FixIn(
        t=t, lat=-33.8688197, lon=151.2092955, alt=58.25, speed=6.43,
        heading=359.9, hdop=0.9, sats=12, mode=3,
    )  # fmt: skip
    received = (RECEIVED + timedelta(microseconds=999_999)).astimezone(cest)
    result = await store.insert_fixes(device_id, [full], received)
    # A fix given in another zone is the same instant.
    other_zone = FixIn(t=(t + timedelta(microseconds=1)).astimezone(cest), lat=0.0, lon=0.0)
    await store.insert_fixes(device_id, [other_zone], received)

    [stored, stored_other] = await store.track(device_id, t, t + timedelta(seconds=1))
    assert stored == full
    assert stored.t.utcoffset() == timedelta(0)
    assert stored_other.t == t + timedelta(microseconds=1)
    assert stored_other.alt is None and stored_other.sats is None
    assert result.live is not None and result.live.received_at == received
    [live] = await store.live_positions()
    assert live.received_at.utcoffset() == timedelta(0)
    assert live.received_at == received


async def test_ping(store: Store) -> None:
    await store.ping()


# availability ------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgis"])
async def test_unreachable_database_is_store_unavailable(tmp_path: Path, backend: str) -> None:
    unreachable: Store
    if backend == "sqlite":
        (tmp_path / "not-a-dir").write_text("")
        unreachable = SqliteStore(tmp_path / "not-a-dir" / "db.sqlite3")
    else:
        # Nothing listens on a port free_port() just released.
        url = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
        unreachable = PostgisStore(url, connect_timeout=2.0)
    with pytest.raises(StoreUnavailable):
        await unreachable.open()


class TcpProxy:
    """A real TCP hop between store and database that a test can cut and restore."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        self._writers.clear()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers += [writer, up_writer]
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()


@pytest.mark.postgis
async def test_postgis_outage_is_unavailable_then_recovers(postgis_url: str) -> None:
    url = urlsplit(postgis_url)
    proxy = TcpProxy(url.hostname or "127.0.0.1", url.port or 5432)
    await proxy.start()
    userinfo = url.netloc.rpartition("@")[0]
    via_proxy = url._replace(netloc=f"{userinfo}@127.0.0.1:{proxy.port}").geturl()
    store = PostgisStore(via_proxy, min_size=1, max_size=2, connect_timeout=2.0)
    await store.open()
    try:
        device_id = await add_bus(store)
        await proxy.cut()
        with pytest.raises(StoreUnavailable):
            await store.insert_fixes(device_id, [fix(0)], RECEIVED)
        with pytest.raises(StoreUnavailable):
            await store.ping()
        await proxy.start()
        # The pool replaces the dead connections; the retried batch goes through.
        result = await store.insert_fixes(device_id, [fix(0)], RECEIVED)
        assert result.accepted == 1
    finally:
        await store.close()
        await proxy.cut()
