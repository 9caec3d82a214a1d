"""Users and sign-ins, for both stores: the rule about the last admin and each store's steps.

Both stores run the same statements (``sql.py``) in one transaction per change:
read the admins (locked, on PostGIS), check that the change leaves one, apply
it. SQLite's transaction is ``BEGIN IMMEDIATE``, which already serialises
writers; PostGIS locks the admin rows ``FOR UPDATE``, so two admins demoting
each other at once cannot both succeed.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from server.model import Role, User
from server.store.base import LastAdmin
from server.store.rows import Rows
from server.store.sql import POSTGRES, SQLITE
from server.store.sqlite_schema import transaction


def check_leaves_an_admin(admin_ids: set[int], user_id: int, new_role: Role | None) -> None:
    """Raise LastAdmin if ``user_id`` is the only admin and would stop being one.

    ``new_role`` None means the user is deleted.
    """
    if admin_ids == {user_id} and new_role != "admin":
        raise LastAdmin("the last admin cannot be demoted or deleted; make another admin first")


# -- SQLite: functions of the connection, run on the store's worker thread ---------------


def sqlite_update(rows: Rows, user_id: int, role: Role | None, password_hash: str | None) -> Any:
    def work(conn: sqlite3.Connection) -> User | None:
        with transaction(conn):
            if role is not None:
                admins = {r[0] for r in conn.execute(SQLITE.admin_ids)}
                check_leaves_an_admin(admins, user_id, role)
            row = conn.execute(SQLITE.update_user, (role, password_hash, user_id)).fetchone()
            if row is not None and password_hash is not None:
                conn.execute(SQLITE.end_user_sessions, (user_id,))
        return None if row is None else rows.user(row)

    return work


def sqlite_delete(user_id: int) -> Any:
    def work(conn: sqlite3.Connection) -> bool:
        with transaction(conn):
            check_leaves_an_admin({r[0] for r in conn.execute(SQLITE.admin_ids)}, user_id, None)
            return conn.execute(SQLITE.delete_user, (user_id,)).rowcount == 1

    return work


def sqlite_start_session(family: str, user_id: int, jti: str, expires_at: int, now: int) -> Any:
    def work(conn: sqlite3.Connection) -> None:
        with transaction(conn):
            conn.execute(SQLITE.expire_sessions, (now,))
            conn.execute(SQLITE.start_session, (family, user_id, jti, expires_at))

    return work


def sqlite_rotate_session(family: str, jti: str, new_jti: str, expires_at: int, now: int) -> Any:
    def work(conn: sqlite3.Connection) -> int | None:
        with transaction(conn):
            row = conn.execute(
                SQLITE.rotate_session, (new_jti, expires_at, family, jti, now)
            ).fetchone()
            if row is None:
                conn.execute(SQLITE.end_session, (family,))  # a reuse ends the family
                return None
            return int(row[0])

    return work


# -- PostGIS: coroutines on a pooled connection ------------------------------------------

_PG_ADMINS_LOCKED = POSTGRES.admin_ids + " FOR UPDATE"


async def pg_update(
    conn: Any, rows: Rows, user_id: int, role: Role | None, password_hash: str | None
) -> User | None:
    async with conn.transaction():
        if role is not None:
            admins = {r["id"] for r in await conn.fetch(_PG_ADMINS_LOCKED)}
            check_leaves_an_admin(admins, user_id, role)
        row = await conn.fetchrow(POSTGRES.update_user, role, password_hash, user_id)
        if row is not None and password_hash is not None:
            await conn.execute(POSTGRES.end_user_sessions, user_id)
    return None if row is None else rows.user(row)


async def pg_delete(conn: Any, user_id: int) -> bool:
    async with conn.transaction():
        admins = {r["id"] for r in await conn.fetch(_PG_ADMINS_LOCKED)}
        check_leaves_an_admin(admins, user_id, None)
        return bool(await conn.execute(POSTGRES.delete_user, user_id) == "DELETE 1")


async def pg_start_session(
    conn: Any, family: str, user_id: int, jti: str, expires_at: int, now: int
) -> None:
    async with conn.transaction():
        await conn.execute(POSTGRES.expire_sessions, now)
        await conn.execute(POSTGRES.start_session, family, user_id, jti, expires_at)


async def pg_rotate_session(
    conn: Any, family: str, jti: str, new_jti: str, expires_at: int, now: int
) -> int | None:
    async with conn.transaction():
        row = await conn.fetchrow(POSTGRES.rotate_session, new_jti, expires_at, family, jti, now)
        if row is None:
            await conn.execute(POSTGRES.end_session, family)  # a reuse ends the family
            return None
        return int(row["user_id"])
