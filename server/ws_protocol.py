"""uvicorn's sans-I/O WebSocket protocol, parsing a client's bytes only as the app takes them.

uvicorn pauses reading a socket once it has queued a message for the app, but
it parses the whole chunk it has read first: up to 256 kB from uvloop, that is
thousands of small frames, each a parsed event held until the app takes it.
A rider read at its budget's pace (D73) could so make the process hold
megabytes per socket (one event per 6-byte frame). Here the bytes read are kept
as they came and fed to the parser a piece at a time (D76), only while the app has
no message waiting; reading resumes once they are all parsed and taken. A
paced flood then holds at most one read of raw bytes and a handful of events
per socket, and costs a parse only per message the app takes.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

# Small enough that one piece holds few frames; 16 kB messages take 16 pieces.
PIECE_BYTES = 1024


class MeteredWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unparsed = bytearray()

    def data_received(self, data: bytes) -> None:
        self._unparsed += data
        self._parse()

    def _parse(self) -> None:
        # Past the app's close nothing more is queued: parse on, to read the peer's reply.
        while (
            self._unparsed
            and (self.queue.empty() or self.close_sent)
            and not self.transport.is_closing()
        ):
            piece = bytes(self._unparsed[:PIECE_BYTES])
            del self._unparsed[:PIECE_BYTES]
            super().data_received(piece)
        if self._unparsed and not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    async def receive(self) -> Any:
        message = await self.queue.get()
        if self.queue.empty() and self._unparsed:
            self._parse()
        if self.read_paused and self.queue.empty() and not self._unparsed:
            self.read_paused = False
            self.transport.resume_reading()
        return message


# What ``serve`` hands uvicorn as ``ws=`` (an import path, like the HTTP protocol's).
PROTOCOL = "server.ws_protocol:MeteredWebSocketProtocol"
