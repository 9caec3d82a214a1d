"""Unhandled errors to Sentry (or anything speaking its protocol), only when ``SENTRY_DSN`` is set.

Called once per process, before the app or the worker starts. Without a DSN
``sentry_sdk`` is not even imported. What is reported (D57): an exception
nobody handled, so a 500 of ``serve`` or a failing worker pass. Not reported:
answers the client caused (every ``HTTPException`` below 500: ApiError,
validation) and a store outage (``StoreUnavailable``, the 503), which is the
health check's and the metrics' to tell, once, rather than an event per request.

No secrets leave: ``send_default_pii`` is off (no cookies, no user, no
Authorization header), local variables are not collected, and ``scrub``
drops the request body and runs the log redaction of ``server/logs.py`` over
the rest (URL, query string, headers, exception messages, breadcrumbs).
"""

from __future__ import annotations

from typing import Any

from server import __version__
from server.logs import redact_value
from server.settings import OpsSettings


def _expected(exc: BaseException) -> bool:
    from litestar.exceptions import HTTPException

    from server.store.base import StoreUnavailable

    if isinstance(exc, StoreUnavailable):
        return True
    return isinstance(exc, HTTPException) and (exc.status_code < 500 or exc.status_code == 503)


def scrub(event: Any, hint: Any) -> Any:
    """``before_send``: None for what is not reported, else the event without secrets."""
    exc_info = (hint or {}).get("exc_info")
    if exc_info and exc_info[1] is not None and _expected(exc_info[1]):
        return None
    request = event.get("request")
    if isinstance(request, dict):
        # A body is a bus's position, a password or a token: never sent, not even redacted.
        for key in ("data", "cookies"):
            request.pop(key, None)
    return redact_value(event)


def init_error_reports(settings: OpsSettings, component: str) -> bool:
    """Start reporting for ``component`` (``serve``, ``worker``); False when not configured."""
    if not settings.sentry_dsn:
        return False
    import sentry_sdk

    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        release=f"bustracker@{__version__}",
        server_name=None,
        send_default_pii=False,
        include_local_variables=False,
        max_request_body_size="never",
        before_send=scrub,
        # Errors only: tracing every request would cost each one a span.
        traces_sample_rate=0.0,
    )
    from sentry_sdk.integrations.logging import ignore_logger

    # The app's 500 handler logs the traceback too; the Litestar integration has
    # already reported that exception, and a second event would count it twice.
    ignore_logger("server.http")
    sentry_sdk.set_tag("component", component)
    return True
