"""Where the agent's status goes: one snapshot per tick, handed to every sink.

snapshot.py      StatusSnapshot and the rules that name the states
sink.py          the StatusSink protocol: publish(snapshot), close()
fanout.py        one snapshot to every sink, failures logged and contained
file_sink.py     the status file ``bustracker-agent status`` reads
systemd_sink.py  READY / WATCHDOG / STATUS / STOPPING to $NOTIFY_SOCKET
memory_sink.py   ListSink: every snapshot in memory (tests, tools)
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from agent.settings import Settings
from agent.status.fanout import Fanout
from agent.status.file_sink import StatusFileSink
from agent.status.memory_sink import ListSink
from agent.status.sink import StatusSink
from agent.status.snapshot import Gps, State, StatusSnapshot, Uplink
from agent.status.systemd_sink import SystemdSink

__all__ = [
    "Fanout",
    "Gps",
    "ListSink",
    "State",
    "StatusFileSink",
    "StatusSink",
    "StatusSnapshot",
    "SystemdSink",
    "Uplink",
    "default_sinks",
]


def default_sinks(settings: Settings, environ: Mapping[str, str] = os.environ) -> list[StatusSink]:
    """What ``bustracker-agent run`` publishes to: systemd if it asked, and the status file."""
    sinks: list[StatusSink] = []
    systemd = SystemdSink.from_environ(environ)
    if systemd is not None:
        # First: the watchdog must go out right after the health check, not after
        # a status file write that a slow SD card can stretch.
        sinks.append(systemd)
    sinks.append(StatusFileSink(settings.status_path))
    return sinks
