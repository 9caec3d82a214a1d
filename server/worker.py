"""``bustracker worker``: the one process that keeps the store and watches the fleet.

Each pass, under the store's maintenance lock (a second worker skips the
pass, so running two is safe, D59):

- every pass: the fleet's states, and the fleet-offline alert
  (``server/fleet_health.py``) raised once and cleared once;
- at the first pass and then every ``UPKEEP_INTERVAL_S``: partitions ahead,
  ``RETENTION_DAYS``, planner statistics, the database's size;
- the figures of ``server/worker_metrics.py`` (and Redis memory when
  ``REDIS_URL`` is set).

The API processes do none of this any more.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from server.alerts import Alerts
from server.fleet_health import FleetHealth, OfflineAlarm, Transition, describe, fleet_health
from server.settings import Settings
from server.store.base import Expired, Store
from server.worker_metrics import WorkerMetrics

log = logging.getLogger(__name__)

UPKEEP_INTERVAL_S = 6 * 3600


@dataclass(frozen=True, slots=True)
class PassReport:
    """What one pass did; ``locked`` False means another worker held the lock."""

    locked: bool
    health: FleetHealth | None = None
    alert: Transition | None = None
    upkeep: bool = False
    created: list[str] = field(default_factory=list)
    expired: Expired = field(default_factory=Expired)


class Worker:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        alerts: Alerts,
        metrics: WorkerMetrics | None = None,
        redis: Any = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.alerts = alerts
        self.metrics = metrics or WorkerMetrics()
        self.redis = redis
        self.alarm = OfflineAlarm(settings.ops.offline_alert_percent)
        self._upkeep_due = 0.0  # monotonic; the first pass does the upkeep

    async def run_pass(self, now: datetime | None = None, *, upkeep: bool = False) -> PassReport:
        """One pass; ``upkeep`` forces the slow steps even when they are not due."""
        try:
            async with self.store.maintenance_lock() as locked:
                if not locked:
                    log.info("another worker holds the maintenance lock; skipping this pass")
                    self.metrics.passes.labels("skipped").inc()
                    return PassReport(locked=False)
                report = await self._locked_pass(now or datetime.now(UTC), upkeep)
        except Exception:
            self.metrics.passes.labels("failed").inc()
            raise
        self.metrics.passes.labels("ok").inc()
        self.metrics.last_success.set(time.time())
        return report

    async def _locked_pass(self, now: datetime, force_upkeep: bool) -> PassReport:
        created: list[str] = []
        expired = Expired()
        upkeep = force_upkeep or time.monotonic() >= self._upkeep_due
        if upkeep:
            created, expired = await self._upkeep(now)
            self._upkeep_due = time.monotonic() + UPKEEP_INTERVAL_S
        health = await self._fleet(now)
        transition = self.alarm.update(health)
        self.metrics.fleet(health, self.alarm.raised)
        if transition is not None:
            subject, body = describe(health, self.alarm.percent, transition)
            await self.alerts.send(subject, body)
        await self._redis_memory()
        return PassReport(True, health, transition, upkeep, created, expired)

    async def _upkeep(self, now: datetime) -> tuple[list[str], Expired]:
        store, days = self.store, self.settings.store.retention_days
        created = await store.ensure_partitions(now)
        expired = await store.expire_positions(days, now) if days > 0 else Expired()
        if created or expired.partitions or expired.rows:
            log.info(
                "upkeep: created partitions %s; dropped %s, deleted %d fixes older than %d days",
                ", ".join(created) or "none",
                ", ".join(expired.partitions) or "none",
                expired.rows,
                days,
            )
        await store.refresh_statistics()
        self.metrics.upkeep(created, expired)
        self.metrics.database_bytes.set(await store.database_bytes())
        data_dir = self.settings.store.data_dir
        if data_dir.is_dir():
            usage = shutil.disk_usage(data_dir)
            self.metrics.disk_used.set(usage.used / usage.total)
        return created, expired

    async def _fleet(self, now: datetime) -> FleetHealth:
        # Revoked units are gone for good: they are not buses offline.
        active = {d.id for d in await self.store.list_devices() if d.active}
        live = [p for p in await self.store.live_positions() if p.device_id in active]
        seen = [s for s in await self.store.seen_devices() if s.device_id in active]
        return fleet_health(live, seen, now, self.settings.live.offline_after_s)

    async def _redis_memory(self) -> None:
        if self.redis is None:
            return
        try:
            info = await self.redis.info("memory")
        except Exception as exc:  # Redis down must not fail the store's upkeep
            log.warning("Redis memory not read: %r", exc)
            return
        self.metrics.redis_used.set(float(info.get("used_memory", 0)))
        self.metrics.redis_max.set(float(info.get("maxmemory", 0)))

    async def run_forever(self) -> None:
        interval = self.settings.ops.worker_interval_s
        while True:
            try:
                await self.run_pass()
            except Exception:
                log.exception("worker pass failed; retrying in %d s", interval)
            await asyncio.sleep(interval)
