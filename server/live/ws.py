"""``/ws`` (operators) and ``/ws/public`` (riders): live frames over a WebSocket.

Operators authenticate with an access token in the ``Authorization`` header or
the ``token`` query parameter; each route declares its rule (``server/access.py``)
and ``serve`` enforces it. A failed check accepts the connection and closes
it at once with code 4401 (4429 when rate limited, 4400 for a bad filter):
browsers cannot read the HTTP status of a refused upgrade, only a close code,
and a console must tell "sign in again" from "network trouble".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import msgspec
from litestar import WebSocket, websocket

from server.access import access, role_of, rule_of, token_of
from server.live.auth import LiveAuthError, authenticate
from server.live.budget import MessageBudget
from server.live.bus import LiveBus
from server.live.client import ClientSession
from server.live.close_codes import (
    CLOSE_BAD_REQUEST,
    CLOSE_NORMAL,
    CLOSE_TRY_LATER,
)
from server.live.filters import FilterError, filter_from_message, stream_options
from server.model import Role
from server.services import Services
from server.store.base import StoreUnavailable

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024
# A send that cannot complete for this long means the client stopped reading.
SEND_TIMEOUT_S = 60.0

_decode = msgspec.json.Decoder().decode


def handle_message(client: ClientSession, raw: str | bytes) -> None:
    """Apply one client message; a bad one gets an ``error`` frame, not a disconnect."""
    if len(raw) > MAX_MESSAGE_BYTES:
        client.reject_message(f"message larger than {MAX_MESSAGE_BYTES} bytes")
        return
    try:
        message: Any = _decode(raw)
    except msgspec.DecodeError:
        client.reject_message("message is not JSON")
        return
    except RecursionError:
        client.reject_message("message is nested too deeply")
        return
    if not isinstance(message, dict):
        client.reject_message("message is not a JSON object")
        return
    kind = message.get("type")
    if kind == "subscribe":
        try:
            client.resubscribe(filter_from_message(message))
        except FilterError as exc:
            client.reject_message(str(exc))
    elif kind == "ping":
        client.heartbeat_due = True
        client.wake()
    else:
        client.reject_message(f"unknown message type {kind!r}; expected subscribe or ping")


async def _send_frames(socket: WebSocket[Any, Any, Any], client: ClientSession) -> None:
    async for frame in client.frames():
        async with asyncio.timeout(SEND_TIMEOUT_S):
            await socket.send_text(frame)
    await socket.close(client.close_code or CLOSE_NORMAL, client.close_reason)


async def _receive_messages(
    socket: WebSocket[Any, Any, Any], client: ClientSession, budget: MessageBudget | None
) -> None:
    while True:
        # Over its budget, a rider is read at the budget's pace: uvicorn reads no further
        # frame until the one it holds is taken, so the rest of a flood waits in the
        # rider's own socket and costs this process nothing (D73).
        if budget is not None and (delay := budget.wait_s()) > 0.0:
            await asyncio.sleep(delay)
        event = await socket.receive()
        if event["type"] == "websocket.disconnect":
            return
        if budget is not None:
            budget.take()
        data = event.get("text")
        if not isinstance(data, str | bytes):
            data = event.get("bytes")
        handle_message(client, data if isinstance(data, str | bytes) else b"")


async def serve(socket: WebSocket[Any, Any, Any]) -> None:
    """One live session under the rule its route declares: riders' frames when public."""
    svc: Services = socket.app.state.services
    bus: LiveBus = socket.app.state.live
    # The app's guard refuses WebSocket routes without a rule or with "device".
    # Riders' streams were counted by the gate before the app (server/live/door.py).
    await _serve(socket, svc, bus, role_of(rule_of(socket.route_handler) or "admin"))


async def _serve(
    socket: WebSocket[Any, Any, Any], svc: Services, bus: LiveBus, role: Role | None
) -> None:
    public = role is None
    await socket.accept()
    expires_at = None
    owner = None
    try:
        if role is not None:
            credential = await authenticate(
                svc, token_of(socket.headers, socket.query_params), role
            )
            expires_at = credential.expires_at
            owner = (credential.principal.user_id, credential.family)
        options = stream_options(socket.query_params)
    except LiveAuthError as exc:
        await socket.close(exc.close_code, exc.reason)
        return
    except FilterError as exc:
        await socket.close(CLOSE_BAD_REQUEST, str(exc))
        return
    except StoreUnavailable:
        await socket.close(CLOSE_TRY_LATER, "store unavailable")
        return
    client = ClientSession.for_stream(
        bus.hub, options, public=public, expires_at=expires_at, transport="ws", owner=owner
    )
    if not bus.hub.register(client):
        await socket.close(CLOSE_TRY_LATER, "too many live clients on this server")
        return
    rate = svc.settings.http.public_ws_messages
    budget = MessageBudget(rate.count, rate.per_seconds) if public else None
    tasks = [
        asyncio.create_task(_send_frames(socket, client)),
        asyncio.create_task(_receive_messages(socket, client, budget)),
    ]
    try:
        # Whichever ends first ends the session: the client left, the server
        # closed it (token expiry, shutdown), or a send stalled.
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            error = task.exception()
            if error is not None and not isinstance(error, TimeoutError | OSError):
                log.debug("live ws %r ended: %r", client, error)
    finally:
        bus.hub.unregister(client)
        client.close(CLOSE_NORMAL, "")
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task


@websocket("/ws", opt=access("viewer", token_in_query=True))
async def live_ws(socket: WebSocket[Any, Any, Any]) -> None:
    """Operators' live stream; see docs/live.md."""
    await serve(socket)


@websocket("/ws/public", opt=access("public"))
async def live_ws_public(socket: WebSocket[Any, Any, Any]) -> None:
    """Riders' live stream: labels and positions of vehicles in service only."""
    await serve(socket)
