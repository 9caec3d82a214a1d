"""HTTP plumbing shared by the route modules: JSON errors and the services.

Who may call a route is ``server/access.py``.
"""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import datetime, timedelta
from typing import Annotated, Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.params import QueryParameter
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from server.services import Services
from server.store.base import StoreUnavailable
from server.validation import parse_time

log = logging.getLogger(__name__)


def json_object(
    raw: bytes, max_bytes: int, *, example: str = "", empty_ok: bool = False
) -> dict[str, Any]:
    """A small JSON object body (a device, vehicle, route, code), or the 4xx saying what is off.

    ``example`` completes "body must be a JSON object like …"; ``empty_ok`` takes an
    empty body as ``{}`` (a POST whose fields are all optional).
    """
    if len(raw) > max_bytes:
        raise ApiError(413, f"body larger than {max_bytes} bytes")
    if empty_ok and not raw.strip():
        return {}
    try:
        doc = json.loads(raw)
    except RecursionError:
        raise ApiError(422, "body is nested too deeply") from None
    except ValueError:  # not JSON, not UTF-8, or an integer past Python's 4,300 digits
        raise ApiError(422, "body is not JSON") from None
    if not isinstance(doc, dict):
        raise ApiError(422, "body must be a JSON object" + (f" like {example}" if example else ""))
    return doc


class ApiError(HTTPException):
    """An error answered as ``{"error": reason, ...extra}`` with optional headers."""

    def __init__(
        self,
        status_code: int,
        reason: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(status_code=status_code, detail=reason, headers=headers, extra=extra)


# How long a client should wait when the database is away; short, because
# agents keep their buffer and retry with jitter anyway.
STORE_RETRY_AFTER_S = 5


# The ?from=&to= of the history routes (tracks, trips, events, the audit log), documented alike.
FromTime = Annotated[
    str | None, QueryParameter(name="from", description="ISO 8601 with offset, or epoch seconds")
]
ToTime = Annotated[
    str | None,
    QueryParameter(name="to", description="ISO 8601 with offset, or epoch seconds; default now"),
]


def query_time(name: str, value: str | None) -> datetime | None:
    """ISO 8601 with an offset, or epoch seconds; 422 naming ``name`` otherwise."""
    if value is None:
        return None
    raw: Any = value
    with contextlib.suppress(ValueError):
        raw = float(value)
    try:
        return parse_time(raw)
    except ValueError as exc:
        # parse_time speaks of the fix field "t"; the caller knows it as ``name``.
        reason = str(exc).removeprefix("t: ")
        raise ApiError(422, f"{name}: {reason}") from None
    except (OverflowError, OSError):
        raise ApiError(422, f"{name}: out of range") from None


def checked_range(
    start: datetime, end: datetime, longest: timedelta | None = None
) -> tuple[datetime, datetime]:
    """``start, end`` if in order and no longer than ``longest``; else a 422 naming from/to."""
    if start >= end:
        raise ApiError(422, "from: must be before to")
    if longest is not None and end - start > longest:
        days = f"{longest.days} day{'' if longest.days == 1 else 's'}"
        raise ApiError(422, f"from/to: at most {days} per request")
    return start, end


def store_unavailable(headers: dict[str, str] | None = None) -> ApiError:
    """The 503 every route answers while the store is away (never a 500)."""
    return ApiError(
        503,
        "store unavailable",
        headers={**(headers or {}), "Retry-After": str(STORE_RETRY_AFTER_S)},
    )


_CARRIED = "answer_headers"


def carry_headers(request: Request[Any, Any, Any], headers: dict[str, str]) -> None:
    """Headers every later answer to this request carries, errors included.

    Ingest's rate-limit headers, set once a device is admitted, so that a 503
    while the store is away tells the sender its budget like a 200 would.
    """
    request.scope.setdefault("state", {})[_CARRIED] = dict(headers)


def error_response(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if isinstance(exc, StoreUnavailable):
        # The one place a store outage becomes an answer: 503, never a 500.
        exc = store_unavailable()
    if isinstance(exc, HTTPException):
        body: dict[str, Any] = {"error": exc.detail}
        if isinstance(exc.extra, dict):
            body.update(exc.extra)
        elif isinstance(exc, ValidationException) and exc.extra:
            body["details"] = exc.extra
        carried = request.scope.get("state", {}).get(_CARRIED, {})
        headers = {**carried, **(exc.headers or {})}
        return Response(body, status_code=exc.status_code, headers=headers or None)
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return Response({"error": "internal error"}, status_code=HTTP_500_INTERNAL_SERVER_ERROR)


def services(request: Request[Any, Any, Any]) -> Services:
    svc: Services = request.app.state.services
    return svc
