"""``POST /v1/telemetry/location``: protocol v1 from bus agents into the store.

The answer is sent only after the store has committed, so an agent may drop
whatever the answer covers: accepted, duplicate, or rejected with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from litestar import Request, Response, post

from server.auth import bearer
from server.http import ApiError, services, store_unavailable
from server.metrics import record_fixes
from server.model import Device, LivePosition
from server.services import Services
from server.settings import Settings
from server.store.base import Store, StoreUnavailable
from server.validation import BodyError, decode


@dataclass
class IngestAnswer:
    accepted: int
    duplicates: int
    rejected: list[dict[str, Any]] = field(default_factory=list)
    live: LivePosition | None = None

    def body(self, settings: Settings) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "limits": limits(settings),
        }


def limits(settings: Settings) -> dict[str, Any]:
    """What an agent needs to plan its sends without provoking a 429."""
    return {
        "requests_per_minute": settings.rate_limit_telemetry.per_minute,
        "max_batch": settings.max_batch,
        "max_body_bytes": settings.max_body_bytes,
    }


def limit_headers(settings: Settings) -> dict[str, str]:
    return {"X-Max-Batch": str(settings.max_batch)}


async def ingest(
    store: Store,
    device: Device,
    raw: bytes,
    content_encoding: str | None,
    now: datetime,
    settings: Settings,
) -> IngestAnswer:
    """Decode, validate and store one request body. Raises BodyError or StoreUnavailable."""
    batch = decode(
        raw,
        content_encoding,
        now,
        max_batch=settings.max_batch,
        max_body_bytes=settings.max_body_bytes,
        future_tolerance=timedelta(seconds=settings.future_tolerance_s),
    )
    rejected = [{"index": r.index, "reason": r.reason} for r in batch.rejected]
    if not batch.fixes:
        return IngestAnswer(0, 0, rejected)
    result = await store.insert_fixes(device.id, [fix for _, fix in batch.fixes], now)
    return IngestAnswer(result.accepted, result.duplicates, rejected, result.live)


async def authenticate_device(svc: Services, token: str | None, missing: str) -> Device:
    """The device behind a token, or 401 (``missing`` says where the token belongs) / 503."""
    if not token:
        raise ApiError(401, missing, headers={"WWW-Authenticate": "Bearer"})
    try:
        device = await svc.devices.device(token)
    except StoreUnavailable:
        raise store_unavailable() from None
    if device is None:
        raise ApiError(
            401, "unknown or revoked device token", headers={"WWW-Authenticate": "Bearer"}
        )
    return device


@post("/v1/telemetry/location", status_code=200, tags=["telemetry"], summary="Upload fixes")
async def post_location(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    svc = services(request)
    settings = svc.settings
    device = await authenticate_device(
        svc, bearer(request.headers.get("authorization")), "missing device token"
    )
    decision = await svc.limiter.hit(
        settings.rate_limit_telemetry, "telemetry", f"device:{device.id}"
    )
    headers = {**decision.headers(), **limit_headers(settings)}
    if not decision.allowed:
        raise ApiError(429, "rate limit exceeded", headers=headers, limits=limits(settings))
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > settings.max_body_bytes:
        raise ApiError(413, f"body larger than {settings.max_body_bytes} bytes", headers=headers)
    raw = await request.body()
    try:
        answer = await ingest(
            svc.store,
            device,
            raw,
            request.headers.get("content-encoding"),
            datetime.now(UTC),
            settings,
        )
    except BodyError as exc:
        raise ApiError(exc.status, exc.reason, headers=headers, **exc.extra) from None
    except StoreUnavailable:
        raise store_unavailable(headers) from None
    record_fixes(
        request, "v1", answer.accepted, answer.duplicates, [r["reason"] for r in answer.rejected]
    )
    if answer.live is not None:
        await svc.publish(answer.live)
    return Response(answer.body(settings), status_code=200, headers=headers)
