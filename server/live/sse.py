"""``/v1/live/stream`` (operators) and ``/v1/live/public/stream``: the same frames as SSE.

For clients that cannot hold a WebSocket (some proxies, simple scripts). The
filter comes from the query (``bbox``, ``routes``, ``since``, ``heartbeat``);
to change it, reconnect. Every event carries ``id:`` = the server time, so an
``EventSource`` that reconnects on its own sends ``Last-Event-ID`` and gets
only what changed meanwhile.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.response import ServerSentEvent, ServerSentEventMessage

from server.access import Credential, access
from server.http import ApiError
from server.live.bus import LiveBus
from server.live.client import ClientSession
from server.live.close_codes import CLOSE_TRY_LATER
from server.live.filters import FilterError, stream_options
from server.live.gate import RETRY_AFTER_S
from server.live.views import dumps
from server.vehicle import iso

RETRY_MS = 3000


async def _events(
    bus: LiveBus, client: ClientSession, address: str | None
) -> AsyncIterator[ServerSentEventMessage]:
    """The stream; ``address`` for a rider's, counted against the public caps while it runs."""
    refused = None if address is None else bus.gate.admit(address)
    if refused is not None:
        client.close(CLOSE_TRY_LATER, refused)
    elif not bus.hub.register(client):
        client.close(CLOSE_TRY_LATER, "too many live clients on this server")
    try:
        async for frame in client.frames():
            yield ServerSentEventMessage(data=frame, id=iso(datetime.now(UTC)))
        # SSE has no close code: say why the stream ends, then end it.
        yield ServerSentEventMessage(
            data=dumps({"type": "close", "code": client.close_code, "reason": client.close_reason})
        )
    finally:
        bus.hub.unregister(client)
        if address is not None and refused is None:
            bus.gate.release(address)


async def _stream(
    request: Request[Any, Any, Any], credential: Credential | None
) -> ServerSentEvent:
    """Riders' frames without a credential; an operator's, until the credential expires."""
    bus: LiveBus = request.app.state.live
    public = credential is None
    expires_at = None if credential is None else credential.expires_at
    address = None
    if public:
        address = request.client.host if request.client else "unknown"
        refused = bus.gate.refusal(address)
        if refused is not None:
            raise ApiError(503, refused, headers={"Retry-After": str(RETRY_AFTER_S)})
    try:
        options = stream_options(request.query_params, request.headers.get("last-event-id"))
    except FilterError as exc:
        raise ApiError(400, str(exc)) from None
    owner = None if credential is None else (credential.principal.user_id, credential.family)
    client = ClientSession.for_stream(
        bus.hub, options, public=public, expires_at=expires_at, transport="sse", owner=owner
    )
    return ServerSentEvent(_events(bus, client, address), retry_duration=RETRY_MS)


@get(
    "/v1/live/stream",
    tags=["live"],
    summary="Operators' live frames as server-sent events",
    opt=access("viewer", token_in_query=True),
)
async def live_stream(
    request: Request[Any, Any, Any], credential: NamedDependency[Credential]
) -> ServerSentEvent:
    return await _stream(request, credential)


@get(
    "/v1/live/public/stream",
    tags=["live"],
    summary="Riders' live frames as server-sent events",
    opt=access("public"),
)
async def live_public_stream(request: Request[Any, Any, Any]) -> ServerSentEvent:
    return await _stream(request, None)
