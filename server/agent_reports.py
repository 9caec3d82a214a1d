"""What agents say about themselves (the v1 body's ``agent`` object), kept per device.

Every upload carries the agent's version and backlog, but storing each one
would add a write to every telemetry request. A report is written when it
differs from the last one this process wrote for the device, or when that one
is older than ``REFRESH_S``; the store keeps, besides the latest, the backlog
of about a minute before (``backlog_base``) so the wallboard can tell a
backlog that grows (``server/fleet_summary.py``).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from server.model import AgentReport
from server.store.base import Fleet

REFRESH_S = 60.0
# How old the base a growing backlog is measured against is, at least.
BASE_AGE = timedelta(seconds=60)
MAX_ENTRIES = 100_000


class AgentReports:
    def __init__(self, store: Fleet) -> None:
        self._store = store
        self._written: dict[int, tuple[AgentReport, float]] = {}

    async def record(self, device_id: int, report: AgentReport, at: datetime) -> bool:
        """Store ``report`` unless this process stored the same one lately; True if written."""
        now = time.monotonic()
        last = self._written.get(device_id)
        if last is not None and last[0] == report and now - last[1] < REFRESH_S:
            return False
        await self._store.record_agent(device_id, report, at, at - BASE_AGE)
        if len(self._written) >= MAX_ENTRIES:
            self._written.clear()
        self._written[device_id] = (report, now)
        return True
