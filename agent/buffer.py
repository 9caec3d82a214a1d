"""The on-bus buffer: every kept fix, on disk, until the server has answered for it.

SQLite through sqlite-utils, in WAL mode. A fix counts as captured only once
the transaction that inserted it has committed; only the server's answer
removes it (accepted, duplicate, or rejected with a reason). The file is the
same whatever the rest of the configuration says, so a config change never
strands a backlog, and the schema carries its version in ``user_version``.

Rows are compact, at exactly the wire precision (agent.rows). Two fixes with
the same millisecond are the same fix, as they are for the server.

When the used size passes ``max_mb`` the OLDEST backlog is thinned (every
other fix of the oldest hour that still has more than one fix a minute), and
only when all of it is that sparse is the oldest hour dropped: new fixes are
never refused, and old trips keep their shape at a coarser resolution.

Each thread opens its own ``Buffer`` (SQLite connections are per thread); WAL
lets the uplink read while the capture thread writes.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from agent.fix import Fix
from agent.rows import COLUMNS, SCHEMA, SCHEMA_VERSION, from_row, t_ms, to_row

log = logging.getLogger(__name__)

_HOUR_MS = 3_600_000
_SPARSE_PER_HOUR = 60  # below this the oldest hour is dropped rather than thinned
_CAP_CHECK_EVERY = 64  # adds between size checks: PRAGMAs are cheap, not free


_REQUEUED = "requeued"  # meta: fixes ever moved back from quarantine, by any process


class BufferError(Exception):
    """The buffer file can't be used (e.g. written by a newer agent)."""


class _Tally:
    """The backlog size, kept in memory: count(*) scans the whole table, which on
    a Pi with a week of backlog costs more CPU than everything else together."""

    def __init__(self, n: int, requeued: int) -> None:
        self.n = n
        self.requeued = requeued
        self.users = 0
        self.lock = threading.Lock()

    def add(self, delta: int) -> None:
        with self.lock:
            self.n += delta

    def follow(self, requeued: int) -> None:
        """Count fixes requeued by another process (``quarantine requeue`` while we run)."""
        with self.lock:
            if requeued > self.requeued:  # a connection may read an older value than another
                self.n += requeued - self.requeued
                self.requeued = requeued


_TALLIES: dict[Path, _Tally] = {}
_TALLIES_LOCK = threading.Lock()


def boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


class Buffer:
    def __init__(
        self,
        path: Path | str,
        max_mb: float = 100.0,
        synchronous: str = "full",
        read_only: bool = False,
        create: bool = True,
    ) -> None:
        self.path = Path(path)
        self.max_bytes = int(max_mb * 1024 * 1024)
        self._adds = 0
        self._tally: _Tally | None = None
        # check_same_thread=False: a Buffer is built in one thread and used by
        # another (never by two at once); SQLite itself is in serialized mode.
        if read_only or not create:
            # A URI so that a missing file is an error rather than a new empty buffer.
            uri = f"{self.path.resolve().as_uri()}?mode={'ro' if read_only else 'rw'}"
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False)
        self.db = sqlite_utils.Database(conn, execute_plugins=False)
        if read_only:
            self._check_version(self.db.execute("PRAGMA user_version").fetchone()[0])
            return
        self.db.execute("PRAGMA busy_timeout = 10000")
        self.db.enable_wal()
        self.db.execute(f"PRAGMA synchronous = {'FULL' if synchronous == 'full' else 'NORMAL'}")
        self.db.execute("PRAGMA journal_size_limit = 4194304")
        # Reads and writes touch only the newest end of the table: a small page
        # cache per connection (three of them) is enough and keeps RSS down.
        self.db.execute("PRAGMA cache_size = -512")
        self._migrate(create)
        # Every writer in this process goes through a Buffer on the same path and
        # keeps the shared tally right; a requeue by another process is followed
        # through meta. Other processes use count(exact=True).
        with _TALLIES_LOCK:
            key = self.path.resolve()
            if key not in _TALLIES:
                with self.db.atomic():  # one snapshot, or a requeue could count twice
                    _TALLIES[key] = _Tally(self._exact_count(), self.get_meta(_REQUEUED, 0))
            tally = self._tally = _TALLIES[key]
            tally.users += 1

    def _check_version(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise BufferError(
                f"{self.path}: schema version {version} is newer than this agent "
                f"understands ({SCHEMA_VERSION}); upgrade the agent"
            )
        if version < SCHEMA_VERSION:
            raise BufferError(f"{self.path}: not a bustracker agent buffer (no schema)")

    def _migrate(self, create: bool) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version < SCHEMA_VERSION and create:
            with self.db.atomic():
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        else:
            self._check_version(version)

    def close(self) -> None:
        if self._tally is not None:
            with _TALLIES_LOCK:
                self._tally.users -= 1
                if self._tally.users == 0:
                    _TALLIES.pop(self.path.resolve(), None)
            self._tally = None
        self.db.close()

    # -- fixes ---------------------------------------------------------------

    def add(self, fix: Fix) -> bool:
        """Store ``fix``; True once committed, False if that ``t`` is already buffered."""
        return self.add_many([fix]) == 1

    def add_many(self, fixes: Iterable[Fix]) -> int:
        rows = [to_row(f) for f in fixes]
        with self.db.atomic():
            before = self.db.conn.total_changes
            self.db.conn.executemany(
                f"INSERT OR IGNORE INTO fixes ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)", rows
            )
            added = self.db.conn.total_changes - before
        self._count(added)
        self._adds += len(rows)
        if self._adds >= _CAP_CHECK_EVERY:
            self._adds = 0
            self.enforce_cap()
        return added

    def _select(self, order: str, n: int, table: str = "fixes") -> list[Fix]:
        cur = self.db.execute(f"SELECT {COLUMNS} FROM {table} ORDER BY t {order} LIMIT ?", [n])
        return [from_row(r) for r in cur.fetchall()]

    def newest(self, n: int) -> list[Fix]:
        """Up to ``n`` fixes, newest first: the uplink sends these live-first."""
        return self._select("DESC", n)

    def last(self) -> Fix | None:
        rows = self.newest(1)
        return rows[0] if rows else None

    def remove(self, ts: Iterable[datetime]) -> int:
        keys = [(t_ms(t),) for t in ts]
        with self.db.atomic():
            before = self.db.conn.total_changes
            self.db.conn.executemany("DELETE FROM fixes WHERE t = ?", keys)
            removed = self.db.conn.total_changes - before
        self._count(-removed)
        return removed

    def _count(self, delta: int) -> None:
        if self._tally is not None:
            self._tally.add(delta)

    def _exact_count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM fixes").fetchone()[0])

    def count(self, exact: bool = False) -> int:
        """Buffered fixes. From the in-process tally unless ``exact`` (or read-only)."""
        if exact or self._tally is None:
            return self._exact_count()
        self._tally.follow(self.get_meta(_REQUEUED, 0))
        return self._tally.n

    # -- quarantine: fixes the server could not read at all ---------------------

    def quarantine(self, fixes: Iterable[Fix], reason: str) -> int:
        """Move fixes out of the send queue but keep them on disk, never silently lost."""
        fixes = list(fixes)
        with self.db.atomic():
            self.db.conn.executemany(
                f"INSERT OR REPLACE INTO quarantine ({COLUMNS}, reason) "
                "VALUES (?,?,?,?,?,?,?,?,?,?)",
                [(*to_row(f), reason) for f in fixes],
            )
            before = self.db.conn.total_changes
            self.db.conn.executemany("DELETE FROM fixes WHERE t = ?", [(t_ms(f.t),) for f in fixes])
            removed = self.db.conn.total_changes - before
        self._count(-removed)
        return len(fixes)

    def quarantined(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM quarantine").fetchone()[0])

    def quarantined_fixes(self) -> list[tuple[Fix, str]]:
        """Every quarantined fix with the server's answer to it, oldest first."""
        cur = self.db.execute(f"SELECT {COLUMNS}, reason FROM quarantine ORDER BY t")
        return [(from_row(r), r[9] or "") for r in cur.fetchall()]

    def requeue_quarantine(self) -> int:
        """Give quarantined fixes another chance (a new agent version may encode them right).

        Returns how many left the quarantine. Safe while the agent runs in another
        process: the count of fixes added goes to meta in the same transaction, and
        the agent's tally follows it.
        """
        with self.db.atomic():
            # Write first: a transaction that read before writing can't wait for the
            # agent's commits in WAL mode, it fails with "database is locked".
            before = self.db.conn.total_changes
            self.db.execute(
                f"INSERT OR IGNORE INTO fixes ({COLUMNS}) SELECT {COLUMNS} FROM quarantine"
            )
            added = self.db.conn.total_changes - before  # one already queued again stays one
            moved = self.quarantined()
            self.db.execute("DELETE FROM quarantine")
            self.set_meta(**{_REQUEUED: self.get_meta(_REQUEUED, 0) + added})
        if self._tally is not None:
            self._tally.follow(self.get_meta(_REQUEUED, 0))
        return moved

    # -- size cap ----------------------------------------------------------------

    def used_bytes(self) -> int:
        page_size, pages, free = (
            self.db.execute(f"PRAGMA {p}").fetchone()[0]
            for p in ("page_size", "page_count", "freelist_count")
        )
        return int(page_size * (pages - free))

    def enforce_cap(self) -> int:
        """Thin the oldest backlog until under ``max_mb``; returns how many fixes went."""
        removed = 0
        for _ in range(100):  # bounded: each round frees a lot or the loop ends
            if self.used_bytes() <= self.max_bytes:
                break
            gone = self._thin_oldest()
            if gone == 0:
                break
            removed += gone
        if removed:
            log.warning(
                "buffer over %.1f MB: thinned %d of the oldest fixes",
                self.max_bytes / 1048576,
                removed,
            )
        return removed

    def _thin_oldest(self) -> int:
        newest = self.db.execute("SELECT max(t) FROM fixes").fetchone()[0]
        if newest is None:
            return 0
        start = self.db.execute("SELECT min(t) FROM fixes").fetchone()[0]
        first_start = start
        while start is not None and start < newest:
            ts = [
                r[0]
                for r in self.db.execute(
                    "SELECT t FROM fixes WHERE t >= ? AND t < ? AND t < ? ORDER BY t",
                    [start, start + _HOUR_MS, newest],
                ).fetchall()
            ]
            if len(ts) > _SPARSE_PER_HOUR:
                return self._delete(ts[1::2])
            start = self.db.execute(
                "SELECT min(t) FROM fixes WHERE t >= ?", [start + _HOUR_MS]
            ).fetchone()[0]
        # Everything is already sparse: drop the oldest hour, never the live fix.
        ts = [
            r[0]
            for r in self.db.execute(
                "SELECT t FROM fixes WHERE t < ? AND t < ?", [first_start + _HOUR_MS, newest]
            ).fetchall()
        ]
        return self._delete(ts)

    def _delete(self, ts: list[int]) -> int:
        with self.db.atomic():
            self.db.conn.executemany("DELETE FROM fixes WHERE t = ?", [(t,) for t in ts])
        self._count(-len(ts))
        return len(ts)

    # -- meta: small persisted facts (uplink deadlines, last upload, state) ------

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT v FROM meta WHERE k = ?", [key]).fetchone()
        return default if row is None else json.loads(row[0])

    def set_meta(self, **values: Any) -> None:
        with self.db.atomic():
            self.db.conn.executemany(
                "INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)",
                [(k, json.dumps(v)) for k, v in values.items()],
            )

    def save_deadline(self, key: str, delay_s: float) -> None:
        """Persist "not before now + delay" so a restart loop can't hammer the server.

        Both clocks are stored: the monotonic one is immune to the wall clock
        being stepped (a Pi without RTC jumps years when NTP syncs) but means
        nothing after a reboot, which the boot id tells apart.
        """
        self.set_meta(
            **{
                key: {
                    "wall": time.time() + delay_s,
                    "delay": delay_s,
                    "mono": time.monotonic() + delay_s,
                    "boot": boot_id(),
                }
            }
        )

    def deadline_delay(self, key: str) -> float:
        """Seconds still to wait for ``key``, clamped to 0..the delay that was asked.

        After a reboot only the wall clock is left, and it may be off by
        years either way, hence the clamp: at worst one full wait again.
        """
        d = self.get_meta(key)
        if not isinstance(d, dict):
            return 0.0
        now_boot = boot_id()
        if now_boot is not None and d.get("boot") == now_boot:
            delay = float(d["mono"]) - time.monotonic()
        else:
            delay = float(d["wall"]) - time.time()
        return min(max(delay, 0.0), float(d.get("delay", 0.0)))
