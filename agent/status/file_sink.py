"""The status file: one JSON document, replaced atomically at every tick.

``bustracker-agent status`` reads it (agent/cli.py), so its keys and their order
are the format documented in docs/agent.md and must not drift; the GPS and
uplink substates of the snapshot are not written here for that reason.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from agent import __version__
from agent.fix import Fix
from agent.protocol import format_time
from agent.status.snapshot import StatusSnapshot


def fix_summary(fix: Fix | None) -> dict[str, Any] | None:
    if fix is None:
        return None
    return {"t": format_time(fix.t), "lat": round(fix.lat, 7), "lon": round(fix.lon, 7)}


def status_doc(snap: StatusSnapshot) -> dict[str, Any]:
    """The status file's document for one snapshot (the first five keys are ``status --json``)."""
    return {
        "state": snap.state,
        "backlog": snap.backlog,
        "last_fix": fix_summary(snap.last_fix),
        "last_upload": snap.last_upload,
        "last_error": snap.last_error,
        "updated_at": snap.at.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "pid": os.getpid(),
        "version": __version__,
        "captured": snap.captured,
        "dropped": dict(snap.dropped),
        "quarantined": snap.quarantined,
        "batch_size": snap.batch_size,
        "upload_interval_s": snap.upload_interval_s,
        "next_attempt_in_s": snap.next_attempt_in_s,
        "requests": snap.requests,
    }


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """tmp + rename: a reader (``status``) never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        # A full disk must not also leave a tmp file behind at every tick.
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


class StatusFileSink:
    """Writes ``status_doc`` to ``path``; an OSError goes to the caller (logged there)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._dir_made = False

    def publish(self, snapshot: StatusSnapshot) -> None:
        if not self._dir_made:
            # Once: a directory that can't be made shows up as the write's error.
            with contextlib.suppress(OSError):
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._dir_made = True
        write_json_atomic(self.path, status_doc(snapshot))

    def close(self) -> None:
        pass  # nothing held open between ticks
