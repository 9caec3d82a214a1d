"""Where the agent's status goes: one snapshot per tick, handed to every sink.

snapshot.py      StatusSnapshot and the rules that name the states
sink.py          the StatusSink protocol: publish(snapshot), close()
fanout.py        one snapshot to every sink, failures logged and contained
file_sink.py     the status file ``bustracker-agent status`` reads
systemd_sink.py  READY / WATCHDOG / STATUS / STOPPING to $NOTIFY_SOCKET
leds/            the GPS and link LEDs (sysfs timer trigger, or GPIO via libgpiod)
memory_sink.py   ListSink: every snapshot in memory (tests, tools)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from agent.settings import Settings
from agent.status.fanout import Fanout
from agent.status.file_sink import StatusFileSink
from agent.status.leds import LedError, LedSink, open_leds
from agent.status.memory_sink import ListSink
from agent.status.sink import StatusSink
from agent.status.snapshot import Gps, State, StatusSnapshot, Uplink
from agent.status.systemd_sink import SystemdSink

log = logging.getLogger(__name__)

__all__ = [
    "Fanout",
    "Gps",
    "LedSink",
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
    """What ``bustracker-agent run`` publishes to: systemd if it asked, the status file,
    and the LEDs when ``leds.backend`` names some."""
    sinks: list[StatusSink] = []
    systemd = SystemdSink.from_environ(environ)
    if systemd is not None:
        # First: the watchdog must go out right after the health check, not after
        # a status file write that a slow SD card can stretch.
        sinks.append(systemd)
    sinks.append(StatusFileSink(settings.status_path))
    try:
        leds = open_leds(settings.leds)
    except LedError as exc:
        # The LEDs are for the driver, never a reason to stop capturing;
        # `bustracker-agent doctor` reports the same problem to the installer.
        log.error("status LEDs off: %s", exc)
        leds = None
    if leds is not None:
        sinks.append(LedSink(leds))
    return sinks
