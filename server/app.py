"""The Litestar application: routes, error handling and the start-up/shut-down of services."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request, Response, get
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.openapi.config import OpenAPIConfig

from server import __version__
from server.auth import TokenIssuer
from server.fleet import fleet_live
from server.http import error_response, services
from server.ingest import post_location
from server.ratelimit import Limiter
from server.services import Services
from server.sessions import login, refresh
from server.settings import Settings
from server.store import open_store
from server.store.base import Store, StoreUnavailable

log = logging.getLogger(__name__)


@get("/health", tags=["operations"], summary="Database and Redis reachability")
async def health(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    svc = services(request)
    checks: dict[str, str] = {}
    try:
        await svc.store.ping()
        checks["database"] = "ok"
    except StoreUnavailable as exc:
        checks["database"] = f"unavailable: {exc}"
    if svc.settings.redis_url:
        checks["redis"] = "ok" if await svc.limiter.ping() else "unavailable"
    ok = all(v == "ok" for v in checks.values())
    body = {"status": "ok" if ok else "degraded", "version": __version__, **checks}
    return Response(body, status_code=200 if ok else 503)


def build_services(settings: Settings, store: Store | None = None) -> Services:
    return Services(
        settings=settings,
        store=store or open_store(settings.database_url, settings.data_dir),
        limiter=Limiter(settings.redis_url),
        tokens=TokenIssuer(
            settings.jwt_secret, settings.jwt_access_expiry_s, settings.jwt_refresh_expiry_s
        ),
    )


def create_app(settings: Settings, store: Store | None = None) -> Litestar:
    svc = build_services(settings, store)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await svc.store.open()
        if not settings.jwt_secret_configured:
            log.warning("JWT_SECRET not set: sign-ins end when this process stops")
        try:
            yield
        finally:
            await svc.store.close()

    cors = (
        CORSConfig(allow_origins=list(settings.cors_origins), allow_credentials=True)
        if settings.cors_origins
        else None
    )
    return Litestar(
        route_handlers=[health, post_location, login, refresh, fleet_live],
        lifespan=[lifespan],
        state=State({"services": svc}),
        exception_handlers={Exception: error_response},
        cors_config=cors,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(title="bustracker", version=__version__, path="/schema"),
        debug=False,
    )
