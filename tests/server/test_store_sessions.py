"""Users and sign-ins in every Store (SQLite and PostGIS): the last admin, rotation, reuse."""

from __future__ import annotations

import time

import pytest

from server.store import Store
from server.store.base import LastAdmin
from tests.server.test_store_contract import database_url, store

__all__ = ["database_url", "store"]  # the contract suite's fixtures, on both stores

LATER = int(time.time()) + 3600


async def test_the_last_admin_cannot_be_demoted_or_deleted(store: Store) -> None:
    root = await store.add_user("root", "h1", "admin")
    viewer = await store.add_user("vera", "h2", "viewer")
    with pytest.raises(LastAdmin):
        await store.update_user(root.id, role="operator")
    with pytest.raises(LastAdmin):
        await store.delete_user(root.id)
    # A password change of the last admin is fine, and so is promoting someone first.
    assert await store.update_user(root.id, password_hash="h3") is not None
    promoted = await store.update_user(viewer.id, role="admin")
    assert promoted is not None and promoted.role == "admin"
    demoted = await store.update_user(root.id, role="viewer")
    assert demoted is not None and demoted.role == "viewer"
    assert [(u.username, u.role, u.password_hash) for u in await store.list_users()] == [
        ("root", "viewer", "h3"),
        ("vera", "admin", "h2"),
    ]
    assert await store.delete_user(root.id) is True
    assert await store.delete_user(root.id) is False
    assert await store.update_user(root.id, role="admin") is None


async def test_a_refresh_token_rotates_once_and_a_reuse_ends_the_family(store: Store) -> None:
    user = await store.add_user("alice", "h", "operator")
    now = int(time.time())
    await store.start_session("fam-1", user.id, "jti-1", LATER)
    assert (await store.session_user("fam-1", now)) == user
    assert await store.rotate_session("fam-1", "jti-1", "jti-2", LATER, now) == user.id
    # jti-1 again: a reuse. Refused, and the family ends, jti-2 with it.
    assert await store.rotate_session("fam-1", "jti-1", "jti-3", LATER, now) is None
    assert await store.rotate_session("fam-1", "jti-2", "jti-3", LATER, now) is None
    assert await store.session_user("fam-1", now) is None


async def test_sign_out_password_and_deletion_end_sign_ins_expiry_too(store: Store) -> None:
    user = await store.add_user("alice", "h", "operator")
    keeper = await store.add_user("admin", "h", "admin")
    now = int(time.time())
    for fam in ("a", "b", "c"):
        await store.start_session(fam, user.id, f"{fam}-1", LATER)
    await store.start_session("k", keeper.id, "k-1", LATER)
    await store.start_session("old", keeper.id, "old-1", now - 1)
    assert await store.session_user("old", now) is None  # expired
    assert await store.end_session("a") is True
    assert await store.end_session("a") is False
    assert await store.session_user("a", now) is None
    # A new role keeps the sign-ins (the next request reads the role) ...
    await store.update_user(user.id, role="viewer")
    changed = await store.session_user("b", now)
    assert changed is not None and changed.role == "viewer"
    # ... a new password ends them all.
    await store.update_user(user.id, password_hash="h2")
    assert await store.session_user("b", now) is None
    assert await store.session_user("c", now) is None
    await store.start_session("d", user.id, "d-1", LATER)
    assert await store.delete_user(user.id) is True
    assert await store.session_user("d", now) is None
    assert await store.session_user("k", now) == keeper
