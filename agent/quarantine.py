"""``bustracker-agent quarantine list|requeue``: the fixes the server could not read (D8).

A fix lands in quarantine when the server answered 422/415 for it even alone
(agent.uplink). It stays in the buffer file until a new agent version starts
(which requeues it) or an installer requeues it here. Both commands work while
the agent runs: ``list`` reads through a read-only connection like ``status``;
``requeue`` is one short write transaction (WAL lets the agent go on), and the
running agent notices the requeued fixes by itself (agent.buffer's tally).
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import Any, NoReturn

from agent.buffer import Buffer, BufferError
from agent.fix import Fix
from agent.protocol import format_time
from agent.settings import Settings

EXIT_RUNTIME = 1


def _fail(message: str) -> NoReturn:
    print(f"bustracker-agent: {message}", file=sys.stderr)
    raise SystemExit(EXIT_RUNTIME)


def open_buffer(settings: Settings, config: str, write: bool) -> Buffer:
    """The existing buffer file, or an error naming it: never a new empty one."""
    path = settings.buffer.path
    if not path.exists():
        _fail(
            f"no buffer file {path} (buffer.path in {config}): "
            "the agent has not buffered anything with this config yet"
        )
    try:
        if write:
            return Buffer(path, synchronous=settings.buffer.synchronous, create=False)
        return Buffer(path, read_only=True)
    except BufferError as exc:
        _fail(str(exc))
    except (sqlite3.Error, OSError) as exc:
        _fail(f"can't {'write' if write else 'read'} buffer {path}: {_why(exc, path, write)}")


def _why(exc: Exception, path: Path, write: bool) -> str:
    # SQLite says "unable to open database file" for a permission problem too.
    hint = ""
    if isinstance(exc, sqlite3.OperationalError) and ("open" in str(exc) or "readonly" in str(exc)):
        hint = f" (needs {'write' if write else 'read'} access to {path} and its directory)"
    return f"{exc}{hint}"


def fix_doc(fix: Fix, reason: str) -> dict[str, Any]:
    return {
        "t": format_time(fix.t),
        "lat": round(fix.lat, 7),
        "lon": round(fix.lon, 7),
        "alt": fix.alt,
        "speed": fix.speed,
        "heading": fix.heading,
        "hdop": fix.hdop,
        "sats": fix.sats,
        "mode": fix.mode,
        "reason": reason,
    }


def _read(buffer: Buffer) -> list[tuple[Fix, str]]:
    try:
        return buffer.quarantined_fixes()
    except sqlite3.Error as exc:
        _fail(f"can't read buffer {buffer.path}: {exc}")
    finally:
        buffer.close()


def cmd_list(settings: Settings, config: str, as_json: bool) -> int:
    buffer = open_buffer(settings, config, write=False)
    path = buffer.path
    rows = _read(buffer)
    if as_json:
        print(json.dumps([fix_doc(f, reason) for f, reason in rows]))
        return 0
    if not rows:
        print(f"no quarantined fixes in {path}")
        return 0
    docs = [fix_doc(f, reason) for f, reason in rows]
    width = max(len("time (GPS, UTC)"), *(len(d["t"]) for d in docs))
    print(f"{'time (GPS, UTC)':<{width}}  {'lat':>11}  {'lon':>12}  server's reason")
    for d in docs:
        print(f"{d['t']:<{width}}  {d['lat']:>11.7f}  {d['lon']:>12.7f}  {d['reason']}")
    n = len(rows)
    print(
        f"\n{n} fix{'es' if n != 1 else ''} quarantined in {path}; "
        f"`bustracker-agent quarantine requeue --config {config}` sends them again"
    )
    return 0


def cmd_requeue(settings: Settings, config: str) -> int:
    buffer = open_buffer(settings, config, write=True)
    try:
        moved = buffer.requeue_quarantine()
    except sqlite3.Error as exc:
        _fail(f"can't write buffer {buffer.path}: {_why(exc, buffer.path, write=True)}")
    finally:
        buffer.close()
    if moved == 0:
        print(f"no quarantined fixes in {settings.buffer.path}: nothing to requeue")
    else:
        print(
            f"requeued {moved} fix{'es' if moved != 1 else ''} from {settings.buffer.path}: "
            "the agent sends them with its next uploads (a running agent too)"
        )
    return 0
