"""Prometheus metrics at ``/metrics``: fixes, rejects, request latency, database pool.

Every app gets its own ``CollectorRegistry``: several apps live in one test
process (and could in one server), and the global default registry would
refuse the second app's metrics as duplicates.

Label values are kept to small fixed sets, because each distinct value is a
time series kept forever by Prometheus: rejects are labelled by the field a
reason names (``lat``, ``t``), never by the reason's text, and latency by the
route template (``/v1/vehicles/{device_id}/track``), never by the raw path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from litestar import Request, Response, get
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from server.access import access
from server.store.base import Maintenance

# The fields a per-fix rejection can name (server/validation.py and the OsmAnd
# decoder); anything else is counted as "other" so the label set stays bounded.
REJECT_FIELDS = frozenset(
    {"t", "lat", "lon", "lat/lon", "alt", "speed", "heading", "hdop", "sats", "mode", "fix"}
    | {"valid", "timestamp", "location"}
)
PROTOCOLS = ("v1", "osmand")
# Ingest answers in milliseconds when healthy; the top buckets catch a slow
# database before requests start timing out.
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def reject_label(reason: str) -> str:
    """The bounded label for a rejection reason: the field it names, or ``other``."""
    field = reason.split(":", 1)[0].strip()
    if field in REJECT_FIELDS:
        return field
    # "fix must be a JSON object" names no field but is a known shape problem.
    return "fix" if field.startswith("fix ") else "other"


class _PoolCollector:
    """Database pool use and group commit, read at scrape time so they never go stale."""

    def __init__(self, store: Maintenance) -> None:
        self._store = store

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        # None on SQLite (one connection, no pool) and while PostGIS is closed: no gauges.
        pool = self._store.pool_stats()
        if pool is not None:
            for value, key, help_text in (
                (pool.size, "size", "Connections open in the database pool"),
                (pool.idle, "idle", "Open connections not in use"),
                (pool.max, "max", "Largest size the pool may grow to"),
            ):
                yield GaugeMetricFamily(f"bustracker_db_pool_{key}", help_text, value=value)
        reads = self._store.history_reads()
        history = CounterMetricFamily(
            "bustracker_db_history_reads",
            "Track reads by where they ran (DATABASE_READ_URL sends them to a replica)",
            labels=["target"],
        )
        history.add_metric(["primary"], reads.primary)
        history.add_metric(["replica"], reads.replica)
        yield history
        groups = self._store.group_stats()
        # Their ratio is the mean group size: what group commit is saving.
        yield CounterMetricFamily(
            "bustracker_db_insert_groups",
            "Statements (PostGIS) or transactions (SQLite) that inserted batches together",
            value=groups.statements,
        )
        yield CounterMetricFamily(
            "bustracker_db_insert_grouped_batches",
            "Batches inserted through those statements or transactions",
            value=groups.batches,
        )


class _LiveCollector:
    """Open live streams by audience and transport, counted at scrape time."""

    def __init__(self, count: Callable[[], Mapping[tuple[str, str], int]]) -> None:
        self._count = count

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "bustracker_live_connections",
            "Open live streams (WebSocket, SSE) on this process",
            labels=["audience", "transport"],
        )
        counts = self._count()
        for audience in ("public", "operator"):
            for transport in ("ws", "sse"):
                family.add_metric([audience, transport], counts.get((audience, transport), 0))
        yield family


class Metrics:
    def __init__(
        self,
        store: Maintenance,
        live_connections: Callable[[], Mapping[tuple[str, str], int]] | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        self.fixes_accepted = Counter(
            "bustracker_fixes_accepted",
            "Fixes stored for the first time",
            ["protocol"],
            registry=self.registry,
        )
        self.fixes_duplicate = Counter(
            "bustracker_fixes_duplicate",
            "Fixes received again and not stored twice",
            ["protocol"],
            registry=self.registry,
        )
        self.fixes_rejected = Counter(
            "bustracker_fixes_rejected",
            "Fixes refused by validation, by the field the reason names",
            ["protocol", "field"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "bustracker_http_request_duration_seconds",
            "Time from request start to the end of the answer",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_PoolCollector(store))
        if live_connections is not None:
            self.registry.register(_LiveCollector(live_connections))
        # Zero series exist from the start, so rate() works before the first fix.
        for protocol in PROTOCOLS:
            self.fixes_accepted.labels(protocol)
            self.fixes_duplicate.labels(protocol)

    def fixes(self, protocol: str, accepted: int, duplicates: int, reasons: Sequence[str]) -> None:
        if accepted:
            self.fixes_accepted.labels(protocol).inc(accepted)
        if duplicates:
            self.fixes_duplicate.labels(protocol).inc(duplicates)
        for reason in reasons:
            self.fixes_rejected.labels(protocol, reject_label(reason)).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


def app_metrics(request: Request[Any, Any, Any]) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


def record_fixes(
    request: Request[Any, Any, Any],
    protocol: str,
    accepted: int,
    duplicates: int,
    reasons: Sequence[str] = (),
) -> None:
    """Count one answered batch; called after the store committed it."""
    metrics: Metrics | None = request.app.state.get("metrics")
    if metrics is not None:
        metrics.fixes(protocol, accepted, duplicates, reasons)


class LatencyMiddleware(ASGIMiddleware):
    """Observes every matched HTTP route, including answers made by exception handlers."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        # Bounded like the labels themselves: route templates, methods, statuses.
        self._series: dict[tuple[str, str, int], Any] = {}

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        started = time.perf_counter()
        status = 500  # what the client sees if the handler dies before answering

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await next_app(scope, receive, capture)
        finally:
            key = (str(scope.get("method", "?")), scope.get("path_template") or "unmatched", status)
            series = self._series.get(key)
            if series is None:
                # labels() takes a lock and builds the key each time: look it up once.
                series = self._series[key] = self.metrics.request_seconds.labels(
                    key[0], key[1], str(status)
                )
            series.observe(time.perf_counter() - started)


# Version 0.0.4 is what every Prometheus server scrapes by default.
@get(
    "/metrics",
    tags=["operations"],
    summary="Prometheus metrics",
    media_type=CONTENT_TYPE_PLAIN_0_0_4,
    opt=access("public"),
)
async def metrics_endpoint(request: Request[Any, Any, Any]) -> Response[bytes]:
    return Response(app_metrics(request).render(), media_type=CONTENT_TYPE_PLAIN_0_0_4)
