"""The ingest sequence every protocol shares, and ``POST /v1/telemetry/location`` (protocol v1).

Every protocol goes through the same steps: authenticate the device token
(``admit``), charge its rate budget (``admit``), validate each fix, store the
valid ones and publish the live position (``commit``). Only decoding differs:
protocol v1 here, OsmAnd in ``server/osmand_route.py``.

The answer is sent only after the store has committed, so an agent may drop
whatever the answer covers: accepted, duplicate, or rejected with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from litestar import Request, Response, post

from server.access import access
from server.auth import bearer, hash_device_token
from server.http import ApiError, carry_headers, services
from server.metrics import record_fixes
from server.model import Device, LivePosition
from server.services import Services
from server.settings import RateLimit, Settings
from server.store.base import Store
from server.validation import Batch, BodyError, decode


@dataclass
class IngestAnswer:
    accepted: int
    duplicates: int
    rejected: list[dict[str, Any]] = field(default_factory=list)
    live: LivePosition | None = None

    def body(self, settings: Settings, protocol: str = "v1") -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "limits": limits(settings, protocol),
        }


@dataclass(frozen=True, slots=True)
class Admission:
    """A device let in: who it is and the rate-limit headers every answer carries."""

    device: Device
    headers: dict[str, str]


def limits(settings: Settings, protocol: str = "v1") -> dict[str, Any]:
    """What a sender needs to plan its sends without provoking a 429."""
    budget: dict[str, Any]
    if protocol == "osmand":
        budget = {"fixes_per_minute": settings.limits.rate_limit_osmand.per_minute}
    else:
        budget = {"requests_per_minute": settings.limits.rate_limit_telemetry.per_minute}
    return {
        **budget,
        "max_batch": settings.limits.max_batch,
        "max_body_bytes": settings.limits.max_body_bytes,
    }


def limit_headers(settings: Settings) -> dict[str, str]:
    return {"X-Max-Batch": str(settings.limits.max_batch)}


def budget(settings: Settings, protocol: str) -> RateLimit:
    """Protocol v1 is budgeted per request; OsmAnd senders per fix (docs/decisions.md)."""
    return (
        settings.limits.rate_limit_osmand
        if protocol == "osmand"
        else settings.limits.rate_limit_telemetry
    )


async def authenticate_device(svc: Services, token: str | None, missing: str) -> Device:
    """The device behind a token, or 401 (``missing`` says where the token belongs) / 503."""
    if not token:
        raise ApiError(401, missing, headers={"WWW-Authenticate": "Bearer"})
    device = await svc.devices.device(token)
    if device is None:
        # A revoked or rotated-away token still calling: its device shows an auth error.
        device_id = await svc.store.note_auth_error(hash_device_token(token), datetime.now(UTC))
        if device_id is not None:
            await svc.publish_device(await svc.store.device_view(device_id))
        raise ApiError(
            401, "unknown or revoked device token", headers={"WWW-Authenticate": "Bearer"}
        )
    return device


async def admit(
    request: Request[Any, Any, Any], token: str | None, missing: str, protocol: str, cost: int = 1
) -> Admission:
    """Steps 1 and 2: the device behind the token, charged ``cost`` of its budget; or 401/429.

    This is where a ``device`` route's rule is enforced (``server/access.py``):
    each protocol carries the token in its own place. From here on, every
    answer, a 503 included, carries the rate-limit headers.
    """
    svc = services(request)
    settings = svc.settings
    device = await authenticate_device(svc, token, missing)
    rate = budget(settings, protocol)
    scope = "osmand" if protocol == "osmand" else "telemetry"
    decision = await svc.limiter.hit(rate, scope, f"device:{device.id}", cost)
    headers = {**decision.headers(), **limit_headers(settings)}
    if not decision.allowed:
        raise ApiError(
            429, "rate limit exceeded", headers=headers, limits=limits(settings, protocol)
        )
    carry_headers(request, headers)
    return Admission(device, headers)


async def store_batch(store: Store, device: Device, batch: Batch, now: datetime) -> IngestAnswer:
    """Step 3: store the valid fixes of a validated batch. Raises StoreUnavailable."""
    rejected = [{"index": r.index, "reason": r.reason} for r in batch.rejected]
    if not batch.fixes:
        return IngestAnswer(0, 0, rejected)
    result = await store.insert_fixes(device.id, [fix for _, fix in batch.fixes], now)
    return IngestAnswer(result.accepted, result.duplicates, rejected, result.live)


async def commit(
    request: Request[Any, Any, Any],
    admission: Admission,
    batch: Batch,
    now: datetime,
    protocol: str,
) -> IngestAnswer:
    """Steps 3 and 4: store (503 while the store is away), count, publish the live position."""
    svc = services(request)
    answer = await store_batch(svc.store, admission.device, batch, now)
    reasons = [r["reason"] for r in answer.rejected]
    record_fixes(request, protocol, answer.accepted, answer.duplicates, reasons)
    if answer.live is not None:
        await svc.publish(answer.live)
    return answer


def decode_v1(raw: bytes, content_encoding: str | None, now: datetime, settings: Settings) -> Batch:
    """A protocol v1 body, decoded and validated fix by fix. Raises BodyError."""
    return decode(
        raw,
        content_encoding,
        now,
        max_batch=settings.limits.max_batch,
        max_body_bytes=settings.limits.max_body_bytes,
        future_tolerance=timedelta(seconds=settings.limits.future_tolerance_s),
    )


async def ingest(
    store: Store,
    device: Device,
    raw: bytes,
    content_encoding: str | None,
    now: datetime,
    settings: Settings,
) -> IngestAnswer:
    """Decode, validate and store one v1 body. Raises BodyError or StoreUnavailable."""
    return await store_batch(store, device, decode_v1(raw, content_encoding, now, settings), now)


@post(
    "/v1/telemetry/location",
    status_code=200,
    tags=["telemetry"],
    summary="Upload fixes",
    opt=access("device"),
)
async def post_location(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    svc = services(request)
    settings = svc.settings
    token = bearer(request.headers.get("authorization"))
    admission = await admit(request, token, "missing device token", "v1")
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > settings.limits.max_body_bytes:
        raise ApiError(
            413,
            f"body larger than {settings.limits.max_body_bytes} bytes",
            headers=admission.headers,
        )
    raw = await request.body()
    now = datetime.now(UTC)
    try:
        batch = decode_v1(raw, request.headers.get("content-encoding"), now, settings)
    except BodyError as exc:
        raise ApiError(exc.status, exc.reason, headers=admission.headers, **exc.extra) from None
    if batch.agent is not None:
        # Before the fixes, so the live position they publish carries the report.
        await svc.agents.record(admission.device.id, batch.agent, now)
    answer = await commit(request, admission, batch, now, "v1")
    return Response(answer.body(settings), status_code=200, headers=admission.headers)
