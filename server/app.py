"""The Litestar application: routes, error handling and the start-up/shut-down of services."""

from __future__ import annotations

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
from server.agent_reports import AgentReports
from server.auth import TokenIssuer
from server.console import console_router
from server.device_tokens import DeviceTokens
from server.devices import create_device, list_devices, revoke_device, rotate_device
from server.events import device_events
from server.fleet import fleet_live
from server.fleet_routes import FLEET_ROUTES
from server.gtfs_rt.cache import FeedCache
from server.gtfs_rt.route import ROUTES as GTFS_RT_ROUTES
from server.head import HeadAsGet
from server.headers import SecurityHeaders
from server.http import error_response, services
from server.ingest import post_location
from server.live import LivePlugin
from server.live.door import RiderDoor
from server.logs import route_to_stdlib
from server.metrics import LatencyMiddleware, Metrics, metrics_endpoint
from server.monitor import monitor_router
from server.openapi_docs import document
from server.osmand_route import osmand
from server.ratelimit import Limiter
from server.request_log import RequestLog
from server.rider import ROUTES as RIDER_ROUTES
from server.routes_api import ROUTES as ROUTES_API
from server.services import Services
from server.sessions import change_password, login, logout, refresh
from server.settings import Settings
from server.share import share_assets_router, share_page
from server.store import open_configured
from server.store.base import Store, StoreUnavailable
from server.tracks import fleet_nearby, vehicle_track, vehicle_track_gpx
from server.transit import ROUTES as TRANSIT_ROUTES
from server.transit import TransitCache
from server.trips_route import device_trips
from server.users import create_user, delete_user, list_users, update_user
from server.vendor import leaflet_file, map_settings

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


def build_services(settings: Settings, store: Store | None = None) -> Services:
    # Start-up only checks the PostGIS schema: migrating is `bustracker migrate`'s job,
    # run once before a deploy, not by every replica racing at boot.
    store = store or open_configured(settings.store, migrate=False)
    return Services(
        settings=settings,
        store=store,
        devices=DeviceTokens(store, ttl_s=settings.auth.device_cache_s),
        agents=AgentReports(store),
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
        # Partitions, retention and statistics are `bustracker worker`'s job (D59).
        try:
            yield
        finally:
            await svc.store.close()

    cors = (
        CORSConfig(allow_origins=list(settings.http.cors_origins), allow_credentials=True)
        if settings.http.cors_origins
        else None
    )
    live = LivePlugin(svc)
    metrics = Metrics(svc.store, live.bus.hub.connections)
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
            vehicle_track_gpx,
            fleet_nearby,
            list_devices,
            create_device,
            rotate_device,
            revoke_device,
            device_events,
            metrics_endpoint,
            *ROUTES_API,
            *TRANSIT_ROUTES,
            *GTFS_RT_ROUTES,
            *RIDER_ROUTES,
            *FLEET_ROUTES,  # operators run the fleet (docs/fleet.md)
            # The web pages (docs/console.md, docs/rider.md)
            leaflet_file,
            map_settings,
            device_trips,
            share_page,
            console_router(),
            monitor_router(),
            share_assets_router(),
        ],
        lifespan=[lifespan],
        plugins=[live],
        state=State(
            {
                "services": svc,
                "metrics": metrics,
                "transit": TransitCache(),
                "gtfs_rt": FeedCache(settings.live.gtfs_rt_max_age_s),
            }
        ),
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
    # Around everything, the router's own 404s included: ids, access log, headers; in front
    # of those, the riders' WebSocket gate (a refusal costs none of them). HEAD is a GET
    # to the router, and logged as the HEAD it was.
    handler = RequestLog(SecurityHeaders(HeadAsGet(app.asgi_handler)))
    app.asgi_handler = RiderDoor(handler, lambda: live.bus.gate)
    return app


def app_from_env() -> Litestar:
    """The app of one worker of ``bustracker serve --workers N`` (a uvicorn factory)."""
    import gc

    from server.error_reports import init_error_reports
    from server.logs import configure_logging
    from server.settings import load_settings

    settings = load_settings()
    configure_logging(settings.http.log_format, settings.http.log_level)
    init_error_reports(settings.ops, "serve")
    app = create_app(settings)
    gc.freeze()  # as `bustracker serve` does for a single process
    return app
