"""The Litestar application: routes, error handling and the start-up/shut-down of services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request, Response, Router, get
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.openapi.config import OpenAPIConfig

from server import __version__
from server.access import DEPENDENCIES, access, enforce_access
from server.auth import TokenIssuer
from server.device_tokens import DeviceTokens
from server.devices import create_device, list_devices, revoke_device, rotate_device
from server.events import device_events
from server.fleet import fleet_live
from server.headers import SecurityHeaders
from server.http import error_response, services
from server.ingest import post_location
from server.live import LivePlugin
from server.logs import route_to_stdlib
from server.metrics import LatencyMiddleware, Metrics, metrics_endpoint
from server.openapi_docs import document
from server.osmand_route import osmand
from server.ratelimit import Limiter
from server.request_log import RequestLog
from server.services import Services
from server.sessions import change_password, login, logout, refresh
from server.settings import Settings
from server.store import open_store
from server.store.base import Maintenance, Store, StoreUnavailable
from server.tracks import fleet_nearby, vehicle_track
from server.users import create_user, delete_user, list_users, update_user

log = logging.getLogger(__name__)


@get(
    "/health",
    tags=["operations"],
    summary="Database and Redis reachability",
    opt=access("public"),
)
async def health(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    svc = services(request)
    checks: dict[str, str] = {}
    try:
        await svc.store.ping()
        checks["database"] = "ok"
    except StoreUnavailable as exc:
        checks["database"] = f"unavailable: {exc}"
    if svc.settings.live.redis_url:
        checks["redis"] = "ok" if await svc.limiter.ping() else "unavailable"
    ok = all(v == "ok" for v in checks.values())
    body = {"status": "ok" if ok else "degraded", "version": __version__, **checks}
    return Response(body, status_code=200 if ok else 503)


MAINTENANCE_INTERVAL_S = 6 * 3600


async def maintain(store: Maintenance, retention_days: int) -> None:
    """Keep the store: partitions ahead, fixes past RETENTION_DAYS expired; now and every few hours.

    Every replica runs this; the stores' maintenance is idempotent and takes
    short locks (PostGIS) or short chunks (SQLite), so concurrent runs are harmless.
    ``retention_days`` 0 keeps every fix.
    """
    while True:
        try:
            await store.ensure_partitions()
            if retention_days > 0:
                expired = await store.expire_positions(retention_days)
                if expired.partitions or expired.rows:
                    log.info(
                        "retention: dropped partitions %s, deleted %d fixes older than %d days",
                        ", ".join(expired.partitions) or "none",
                        expired.rows,
                        retention_days,
                    )
        except Exception:
            log.exception("store maintenance failed; retrying later")
        await asyncio.sleep(MAINTENANCE_INTERVAL_S)


def build_services(settings: Settings, store: Store | None = None) -> Services:
    # Start-up only checks the PostGIS schema: migrating is `bustracker migrate`'s job,
    # run once before a deploy, not by every replica racing at boot.
    store = store or open_store(
        settings.store.database_url,
        settings.store.data_dir,
        migrate=False,
        pool_size=settings.store.db_pool_size,
    )
    return Services(
        settings=settings,
        store=store,
        devices=DeviceTokens(store, ttl_s=settings.auth.device_cache_s),
        limiter=Limiter(settings.live.redis_url),
        tokens=TokenIssuer(
            settings.auth.jwt_secret,
            settings.auth.jwt_access_expiry_s,
            settings.auth.jwt_refresh_expiry_s,
        ),
    )


def create_app(settings: Settings, store: Store | None = None) -> Litestar:
    route_to_stdlib()
    svc = build_services(settings, store)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await svc.store.open()
        if not settings.auth.jwt_secret_configured:
            log.warning("JWT_SECRET not set: sign-ins end when this process stops")
            if settings.live.redis_url:
                log.warning(
                    "REDIS_URL is set but JWT_SECRET is not: each replica signs with a key "
                    "of its own, so replicas reject each other's sign-ins; set JWT_SECRET"
                )
        upkeep = asyncio.create_task(maintain(svc.store, settings.store.retention_days))
        try:
            yield
        finally:
            upkeep.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await upkeep
            await svc.store.close()

    cors = (
        CORSConfig(allow_origins=list(settings.http.cors_origins), allow_credentials=True)
        if settings.http.cors_origins
        else None
    )
    metrics = Metrics(svc.store)
    app = Litestar(
        route_handlers=[
            health,
            post_location,
            login,
            refresh,
            logout,
            change_password,
            list_users,
            create_user,
            update_user,
            delete_user,
            fleet_live,
            osmand,
            vehicle_track,
            fleet_nearby,
            list_devices,
            create_device,
            rotate_device,
            revoke_device,
            device_events,
            metrics_endpoint,
        ],
        lifespan=[lifespan],
        plugins=[LivePlugin(svc)],
        state=State({"services": svc, "metrics": metrics}),
        middleware=[LatencyMiddleware(metrics)],
        # Every route declares who may call it (server/access.py); this guard applies it.
        guards=[enforce_access],
        dependencies=DEPENDENCIES,
        exception_handlers={Exception: error_response},
        cors_config=cors,
        request_max_body_size=settings.limits.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="bustracker",
            version=__version__,
            # The schema and its viewers are public, like the default router they replace.
            openapi_router=Router(
                "/schema",
                route_handlers=[],
                include_in_schema=False,
                dto=None,
                return_dto=None,
                opt=access("public"),
            ),
        )
        if settings.http.api_docs
        else None,
        debug=False,
        # Logging is set up once per process (server/logs.py), not by each app.
        logging_config=None,
    )
    if settings.http.api_docs:
        document(app, settings)
    # Around everything, the router's own 404s included: ids, access log, headers.
    app.asgi_handler = RequestLog(SecurityHeaders(app.asgi_handler))
    return app


def app_from_env() -> Litestar:
    """The app of one worker of ``bustracker serve --workers N`` (a uvicorn factory)."""
    import gc

    from server.logs import configure_logging
    from server.settings import load_settings

    settings = load_settings()
    configure_logging(settings.http.log_format, settings.http.log_level)
    app = create_app(settings)
    gc.freeze()  # as `bustracker serve` does for a single process
    return app
