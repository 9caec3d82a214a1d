"""Enrollment: an operator issues a one-time code, the installer's agent trades it for a token.

``POST /v1/devices/{id}/enrollment-code`` (operator) makes the code
(``server/enrollment.py``: short, typeable, expiring, stored hashed);
``POST /v1/enroll`` (public, throttled per address and overall) redeems it
once for a fresh device token, which replaces the device's old one. Refusals
name their reason: ``unknown_code``, ``expired_code`` or ``used_code``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from litestar import Request, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from server import enrollment
from server.access import access
from server.audit import record
from server.auth import Principal, hash_device_token, new_device_token
from server.devices import MAX_BODY, MAX_ID
from server.http import ApiError, json_object, services
from server.settings import RateLimit
from server.store.base import Conflict, EnrollmentRefused, Fleet
from server.vehicle import iso

# Guessing is throttled per client address and for everyone together (an
# attacker with many addresses still gets ENROLL_RATE_ALL): at 60 tries a minute
# against 24^8 codes, finding one live code takes centuries.
ENROLL_RATE_ADDRESS = RateLimit(10, 60)
ENROLL_RATE_ALL = RateLimit(60, 60)
MIN_TTL_S = 60
MAX_TTL_S = 7 * 86400
_STATUS = {"unknown_code": 404, "expired_code": 410, "used_code": 409}


def _object(raw: bytes, empty_ok: bool) -> dict[str, Any]:
    return json_object(raw, MAX_BODY, empty_ok=empty_ok)


def expires_in(doc: dict[str, Any], default: timedelta, lo: int, hi: int) -> timedelta:
    """The body's ``expires_in`` (seconds, lo..hi), else ``default``; 422 naming the field."""
    unknown = sorted(set(doc) - {"expires_in"})
    if unknown:
        raise ApiError(422, f"unknown fields {unknown}; expected expires_in")
    value = doc.get("expires_in")
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ApiError(422, f"expires_in: seconds, {lo}..{hi}")
    return timedelta(seconds=value)


async def issue_enrollment(
    store: Fleet, device_id: int, ttl: timedelta, now: datetime
) -> tuple[str, datetime] | None:
    """A new code for the device (replacing its unused one) and its expiry; None: no device."""
    for _ in range(3):  # a clash with a kept (used or expired) code is rare: draw again
        code = enrollment.new_code()
        canonical = enrollment.normalize(code)
        assert canonical is not None
        try:
            found = await store.issue_enrollment_code(
                device_id, enrollment.code_hash(canonical), now, now + ttl
            )
        except Conflict:
            continue
        return (code, now + ttl) if found else None
    raise ApiError(503, "could not draw a fresh code; try again")


@post(
    "/v1/devices/{device_id:int}/enrollment-code",
    status_code=201,
    tags=["devices"],
    summary="A one-time code the installer types on the bus (replaces the unused one)",
    opt=access("operator"),
)
async def issue_code(
    request: Request[Any, Any, Any], device_id: FromPath[int], principal: NamedDependency[Principal]
) -> dict[str, Any]:
    ttl = expires_in(
        _object(await request.body(), empty_ok=True), enrollment.DEFAULT_TTL, MIN_TTL_S, MAX_TTL_S
    )
    if not 0 < device_id <= MAX_ID:
        raise ApiError(404, f"no device with id {device_id}")
    store = services(request).store
    issued = await issue_enrollment(store, device_id, ttl, datetime.now(UTC))
    if issued is None:
        raise ApiError(404, f"no device with id {device_id}")
    code, expiry = issued
    expires_at = iso(expiry)
    await record(store, principal, "enrollment.issue", "device", device_id, expires_at=expires_at)
    return {"device_id": device_id, "code": code, "expires_at": expires_at}


@post(
    "/v1/enroll",
    status_code=200,
    tags=["devices"],
    summary="Trade an enrollment code for the device's token (bustracker-agent enroll)",
    opt=access("public"),
)
async def enroll(request: Request[Any, Any, Any]) -> dict[str, Any]:
    svc = services(request)
    client = request.client.host if request.client else "unknown"
    for rate, scope, key in (
        (ENROLL_RATE_ADDRESS, "enroll-ip", client),
        (ENROLL_RATE_ALL, "enroll-all", "all"),
    ):
        decision = await svc.limiter.hit(rate, scope, key)
        if not decision.allowed:
            raise ApiError(429, "too many enrollment attempts", headers=decision.headers())
    doc = _object(await request.body(), empty_ok=False)
    typed = doc.get("code")
    if not isinstance(typed, str):
        raise ApiError(422, 'code: required string, like {"code": "ABCD-EFGH"}')
    canonical = enrollment.normalize(typed)
    token = new_device_token()
    try:
        if canonical is None:
            raise EnrollmentRefused("unknown_code")
        device = await svc.store.redeem_enrollment_code(
            enrollment.code_hash(canonical), hash_device_token(token), datetime.now(UTC)
        )
    except EnrollmentRefused as exc:
        raise ApiError(
            _STATUS[exc.reason], exc.reason, message=enrollment.REFUSAL_MESSAGES[exc.reason]
        ) from None
    svc.devices.forget()  # the old token stops working here at once
    await record(svc.store, f"enrollment from {client}", "enrollment.use", "device", device.id)
    await svc.publish_device(await svc.store.device_view(device.id))
    return {"device_id": device.id, "name": device.name, "token": token}
