"""The maintenance worker's Prometheus metrics, served on its own port (D61).

Fleet-wide figures (vehicles by state, the database's size, Redis memory)
come from the worker, not from each API process: one series each, however
many API replicas run, measured once per pass rather than per scrape.
"""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from server.fleet_health import STATES, FleetHealth
from server.store.base import Expired


class WorkerMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.passes = Counter(
            "bustracker_worker_passes",
            "Worker passes: ok, failed, or skipped because another worker holds the lock",
            ["result"],
            registry=r,
        )
        self.last_success = Gauge(
            "bustracker_worker_last_success_timestamp_seconds",
            "Unix time the last pass completed",
            registry=r,
        )
        self.vehicles = Gauge(
            "bustracker_vehicles", "Vehicles by state (server/vehicle.py)", ["state"], registry=r
        )
        self.offline_ratio = Gauge(
            "bustracker_fleet_offline_ratio",
            "Offline vehicles over vehicles in service (0..1)",
            registry=r,
        )
        self.offline_alert = Gauge(
            "bustracker_fleet_offline_alert",
            "1 while the fleet-offline alert is raised (over OFFLINE_ALERT_PERCENT)",
            registry=r,
        )
        self.partitions_created = Counter(
            "bustracker_partitions_created", "Daily position partitions created", registry=r
        )
        self.partitions_dropped = Counter(
            "bustracker_retention_partitions_dropped",
            "Daily partitions dropped by RETENTION_DAYS",
            registry=r,
        )
        self.fixes_deleted = Counter(
            "bustracker_retention_fixes_deleted",
            "Fixes deleted one by one by RETENTION_DAYS (SQLite; PostGIS's default partition)",
            registry=r,
        )
        self.database_bytes = Gauge(
            "bustracker_database_size_bytes", "What the database takes on disk", registry=r
        )
        self.disk_used = Gauge(
            "bustracker_data_disk_used_ratio",
            "Used share of the filesystem holding BUSTRACKER_DATA_DIR (0..1)",
            registry=r,
        )
        self.redis_used = Gauge(
            "bustracker_redis_memory_used_bytes", "Redis used_memory (INFO memory)", registry=r
        )
        self.redis_max = Gauge(
            "bustracker_redis_memory_max_bytes",
            "Redis maxmemory; 0 means no limit set",
            registry=r,
        )
        for result in ("ok", "failed", "skipped"):
            self.passes.labels(result)

    def fleet(self, health: FleetHealth, alert_raised: bool) -> None:
        for state in STATES:
            self.vehicles.labels(state).set(health.counts.get(state, 0))
        self.offline_ratio.set(health.offline_share)
        self.offline_alert.set(1 if alert_raised else 0)

    def upkeep(self, created: list[str], expired: Expired) -> None:
        self.partitions_created.inc(len(created))
        self.partitions_dropped.inc(len(expired.partitions))
        self.fixes_deleted.inc(expired.rows)

    def serve(self, host: str, port: int) -> WSGIServer:
        """Expose ``/metrics`` on ``host:port`` from a daemon thread; ``shutdown()`` stops it."""
        server, _ = start_http_server(port, addr=host, registry=self.registry)
        return server
