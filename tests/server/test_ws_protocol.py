"""server/ws_protocol.py in a real uvicorn on loopback: a flood is parsed only as it is taken.

The app takes one message at a time, slowly, as the live stream does for a rider over its
budget (D73). A client writes thousands of tiny frames at once. uvicorn's own protocol
parses the whole read into events held in memory; ours holds a piece's worth and loses
no message, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.asyncio.client import connect

from server.ws_protocol import PIECE_BYTES, MeteredWebSocketProtocol
from tests.service_procs import free_port

FRAMES = 5_000
# A 1-byte text frame from a client: 2 bytes of header, 4 of mask, 1 of payload.
FRAME_BYTES = 7


class SlowReader:
    """Accepts, then takes a message every half millisecond, noting what it got."""

    def __init__(self) -> None:
        self.taken: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            event = await receive()
            if event["type"] == "websocket.disconnect":
                return
            self.taken.append(event["text"])
            await asyncio.sleep(0.0005)


@contextlib.asynccontextmanager
async def serving(protocol: type, app: SlowReader) -> AsyncIterator[tuple[int, uvicorn.Server]]:
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, ws=protocol, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield port, server
    finally:
        server.should_exit = True
        await task


async def most_waiting(protocol: type) -> tuple[int, list[str]]:
    """The most events the server held for the app while a client flooded it, and what it took."""
    app = SlowReader()
    async with (
        serving(protocol, app) as (port, server),
        connect(f"ws://127.0.0.1:{port}/", compression=None) as ws,
    ):
        for n in range(FRAMES):
            ws.protocol.send_text(str(n % 10).encode())
        ws.send_data()  # write them all at once
        most = 0
        for _ in range(100):
            await asyncio.sleep(0.005)
            for conn in server.server_state.connections:
                queue = getattr(conn, "queue", None)
                if queue is not None:
                    most = max(most, queue.qsize())
    return most, app.taken


@pytest.mark.asyncio
async def test_a_flood_is_parsed_only_as_fast_as_it_is_taken() -> None:
    most, taken = await most_waiting(MeteredWebSocketProtocol)
    # At most one piece of frames waits for the app, however much the client wrote...
    assert 0 < most <= PIECE_BYTES // FRAME_BYTES + 1, most
    # ...and nothing is lost or reordered on the way.
    assert taken and taken == [str(n % 10) for n in range(len(taken))]


@pytest.mark.asyncio
async def test_uvicorns_own_protocol_holds_the_whole_read() -> None:
    # The reason for ours: the stock protocol parses everything it has read at once.
    most, _ = await most_waiting(WebSocketsSansIOProtocol)
    assert most > 10 * (PIECE_BYTES // FRAME_BYTES), most
