"""Riders' WebSocket streams are let in or turned away here, in front of the whole app.

A flood of riders reconnecting past a cap (server/live/gate.py) costs the
process one handshake each; refused inside a route handler, each also ran the
app's request id, access log, headers, metrics and router, which made a
refusal a third dearer and, with many at once, delayed the agents' POSTs
queued behind them on the same event loop (D74). So ``/ws/public`` is
admitted or refused before any of that: refused, the socket is accepted and
closed at once with 1013 (D17: a browser reads a close code, not a refused
upgrade's status) and a reason; admitted, it goes on into the app, and its
place is given back when the stream ends. A refusal is counted
(``public_streams_refused`` in ``/metrics``), not logged one by one: under a
flood the log would be the flood.

An address that has spent its PUBLIC_CONNECTS budget gets its refusal only
after ``SLOW_DOWN_S``: a client reconnecting in a loop then costs one
handshake a second instead of as many as it can make (D74). At most
``SLOWED_MAX`` refusals wait at once, each holding a descriptor; past that
they are answered at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from litestar.types import ASGIApp, Receive, Send

from server.live.close_codes import CLOSE_TRY_LATER
from server.live.gate import PublicGate

PATH = "/ws/public"
SLOW_DOWN_S = 1.0
SLOWED_MAX = 64


class RiderDoor:
    def __init__(self, app: ASGIApp, gate: Callable[[], PublicGate]) -> None:
        self.app = app
        # The gate belongs to the live bus, which the app builds at startup.
        self._gate = gate
        self._slowed = 0

    async def __call__(self, scope: Any, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = str(client[0]) if client else "unknown"
        gate = self._gate()
        refused = gate.admit(address)
        if refused is not None:
            if gate.spent(address) and self._slowed < SLOWED_MAX:
                self._slowed += 1
                try:
                    await asyncio.sleep(SLOW_DOWN_S)
                finally:
                    self._slowed -= 1
            await receive()  # the connect event
            accept: Any = {"type": "websocket.accept"}
            await send(accept)
            close: Any = {"type": "websocket.close", "code": CLOSE_TRY_LATER, "reason": refused}
            await send(close)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            gate.release(address)
