"""uvicorn's HTTP protocol with deadlines for slow clients (HEADER_TIMEOUT, BODY_TIMEOUT).

uvicorn times out idle keep-alive connections but not a request that is
still arriving: a client sending one header byte a minute holds its
connection, and a file descriptor, forever. Here each request's headers must
arrive within ``header_timeout_s`` of its first byte (of the connection, for
the first request), and its body within ``body_timeout_s`` after them; past
either, the connection is closed. A WebSocket upgrade ends the deadlines: the
live stream's own rules take over.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class GuardedHttpProtocol(HttpToolsProtocol):
    header_timeout_s = 10.0
    body_timeout_s = 30.0
    _deadline: asyncio.TimerHandle | None = None

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm(self.header_timeout_s)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # a later request on a kept-alive connection
            self._arm(self.header_timeout_s)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self.parser.should_upgrade():
            self._disarm()
        else:
            self._arm(self.body_timeout_s)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


# What ``serve`` hands uvicorn as ``http=``: an import path, since ``--workers`` pickles the
# config for each worker process (a class made at run time cannot be pickled).
PROTOCOL = "server.http_protocol:GuardedHttpProtocol"


def set_deadlines(header_timeout_s: float, body_timeout_s: float) -> None:
    """This process's deadlines (each worker sets its own from the same settings)."""
    GuardedHttpProtocol.header_timeout_s = header_timeout_s
    GuardedHttpProtocol.body_timeout_s = body_timeout_s
