"""Unhandled errors to Sentry (or anything speaking its protocol), only when ``SENTRY_DSN`` is set.

Called once per process, before the app or the worker starts. Without a DSN
``sentry_sdk`` is not even imported. No request bodies or user details are
sent (``send_default_pii`` off): a fix is a bus's position, and a device token
is a secret.
"""

from __future__ import annotations

from server import __version__
from server.settings import OpsSettings


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
        # Errors only: tracing every request would cost each one a span.
        traces_sample_rate=0.0,
    )
    sentry_sdk.set_tag("component", component)
    return True
