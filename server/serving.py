"""How uvicorn serves the app, the same for ``serve``, the demo and the tests."""

from __future__ import annotations

from typing import Any

from server.settings import Settings


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """What uvicorn runs with, wherever the server is served from (``serve``, the demo, the tests).

    Also sets this process's HEADER_TIMEOUT and BODY_TIMEOUT on the HTTP protocol.
    """
    from server.http_protocol import PROTOCOL, set_deadlines
    from server.live.ws import MAX_MESSAGE_BYTES
    from server.ws_protocol import PROTOCOL as WS_PROTOCOL

    set_deadlines(settings.http.header_timeout_s, settings.http.body_timeout_s)
    return {
        "http": PROTOCOL,
        "log_level": settings.http.log_level,
        # server/logs.py set up the loggers; the access line is server/request_log.py's.
        "log_config": None,
        "access_log": False,
        "ws": WS_PROTOCOL,
        # A client message is refused (close 1009) once its frame passes this, before
        # the rest is read: the 16 kB a subscription may take, not uvicorn's 16 MB.
        "ws_max_size": MAX_MESSAGE_BYTES,
        # No permessage-deflate: its compressor doubled a rider's memory (72 kB against 33)
        # and made every handshake and frame dearer, for frames of a few hundred bytes (D75).
        "ws_per_message_deflate": False,
        # Live streams are closed on SIGTERM; this bounds the wait if one lingers.
        "timeout_graceful_shutdown": 10,
    }
