"""Structured logs: one JSON object per line (or console text), with every secret removed.

Every log line of the process, ours, Litestar's and uvicorn's, goes through one
structlog pipeline (``configure_logging``): the request id bound for the
request in progress (``server/request_log.py``), then ``redact_event``, then the
renderer. Redaction runs on every field of every line, after tracebacks are
turned into text, so a secret in an exception message is caught too:

- query parameters that carry credentials: ``id``, ``deviceid`` (OsmAnd's
  device token), ``token``, ``access_token``, ``refresh_token``, ``code``,
  ``password``;
- ``Bearer …`` values, anything shaped like a JWT or a device token (``bt_…``),
  and JSON members such as ``"password": "…"``;
- whole fields named like a credential or a header that holds one
  (``authorization``, ``cookie``, ``password``, ``body``, …).

Bodies are never logged at all (the access log has method, path, status).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

LOG_FORMATS = ("json", "console")

_PARAMS = "id|deviceid|token|access_token|refresh_token|code|password"
_QUERY = re.compile(rf"((?:^|[?&;])(?:{_PARAMS})=)[^&;\s\"'#]*", re.IGNORECASE)
_BEARER = re.compile(r"(\bbearer\s+)[^\s\"',;]+", re.IGNORECASE)
_JWT = re.compile(r"\beyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]+")
_DEVICE_TOKEN = re.compile(r"\bbt_[\w-]{8,}")
_JSON_MEMBER = re.compile(
    r"""(["'](?:password|current|new|token|access_token|refresh_token|code|device_id)["']\s*:\s*["'])"""
    r"""[^"']*""",
    re.IGNORECASE,
)
_SECRET_FIELDS = frozenset(
    {
        "authorization", "cookie", "set-cookie", "x-api-key", "password", "token",
        "access_token", "refresh_token", "code", "body", "current", "new", "secret",
    }
)  # fmt: skip
REDACTED = "[redacted]"


def redact_text(text: str) -> str:
    """``text`` with every credential the module's docstring lists replaced by [redacted]."""
    text = _QUERY.sub(rf"\1{REDACTED}", text)
    text = _BEARER.sub(rf"\1{REDACTED}", text)
    text = _JWT.sub(REDACTED, text)
    text = _DEVICE_TOKEN.sub(REDACTED, text)
    return _JSON_MEMBER.sub(rf"\1{REDACTED}", text)


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bytes):
        return redact_text(value.decode("utf-8", "replace"))
    if isinstance(value, dict):
        return {
            k: REDACTED if str(k).lower() in _SECRET_FIELDS else _redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def redact_value(value: Any) -> Any:
    """``value`` (text, or dicts and lists of it) with every credential replaced, as logged."""
    return _redact(value)


def redact_event(
    logger: Any, method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """The structlog processor: every field of the line, redacted."""
    for key in list(event):
        event[key] = REDACTED if key.lower() in _SECRET_FIELDS else _redact(event[key])
    return event


def _shared() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def configure_logging(fmt: str, level: str) -> None:
    """Send every logger of the process through the pipeline, to stderr.

    ``fmt``: ``json`` (one object per line, for a log shipper) or ``console``
    (aligned text for a person at a terminal); LOG_FORMAT picks it.
    """
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact_event,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "litestar"):
        named = logging.getLogger(name)
        named.handlers.clear()
        named.propagate = True
    route_to_stdlib(force=True)


def route_to_stdlib(*, force: bool = False) -> None:
    """structlog's loggers hand their events to the stdlib loggers (and their handlers).

    ``create_app`` calls it too, so an app served without ``configure_logging`` (the
    tests' in-process servers) logs through whatever handlers the host set up,
    rather than structlog's default of printing everything to stdout.
    """
    if structlog.is_configured() and not force:
        return
    structlog.configure(
        processors=[*_shared(), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
