"""One connected screen: its filter, its outbox and the loop that turns them into frames.

The transport (WebSocket or SSE) pulls frames from :meth:`ClientSession.frames`
and only asks for the next one when the previous one has been handed to the
server. Frames are rendered at that moment from the hub's current snapshot,
so a slow reader gets fewer, fresher frames instead of a growing backlog, and
nothing a client does can make the hub (or ingest) wait.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Literal, Protocol

from server.live.coalesce import Outbox, frame_delay
from server.live.filters import Filter, StreamOptions

Transport = Literal["ws", "sse"]


class FrameSource(Protocol):
    """What a session needs of the hub: its pacing, its filing and the frames it renders.

    A protocol rather than the hub itself, so the hub can import sessions without
    sessions importing the hub back.
    """

    @property
    def frame_interval_s(self) -> float: ...

    def set_filter(self, client: ClientSession, flt: Filter) -> None: ...

    def error_frame(self, reason: str) -> str: ...

    def heartbeat_frame(self, now: datetime) -> str: ...

    def snapshot_frame(
        self, client: ClientSession, now: datetime, since: datetime | None = None
    ) -> str: ...

    def change_frames(
        self, client: ClientSession, touched: list[int], states: dict[int, str], now: datetime
    ) -> list[str]: ...


_ids = itertools.count(1)


class ClientSession:
    """Hashed by identity: the hub files sessions in sets."""

    # Thousands live at once in one process; slots keep each one small.
    __slots__ = (
        "_last_update",
        "_wake",
        "blocked_since",
        "close_code",
        "close_reason",
        "errors",
        "events",
        "expires_at",
        "filter",
        "frames_sent",
        "heartbeat_due",
        "heartbeat_s",
        "hub",
        "id",
        "last_sent",
        "outbox",
        "owner",
        "public",
        "since",
        "snapshot_wanted",
        "transport",
    )

    @classmethod
    def for_stream(
        cls,
        hub: FrameSource,
        options: StreamOptions,
        *,
        public: bool,
        expires_at: datetime | None,
        transport: Transport,
        owner: tuple[int, str] | None = None,
    ) -> ClientSession:
        """A session for a stream opened with ``options`` (query parameters, parsed).

        ``owner``: the operator's (user id, sign-in family); the stream ends with either.
        """
        session = cls(
            hub,
            public=public,
            flt=options.filter,
            since=options.since,
            heartbeat_s=options.heartbeat_s,
            expires_at=expires_at,
            transport=transport,
        )
        session.owner = owner
        return session

    def __init__(
        self,
        hub: FrameSource,
        *,
        public: bool,
        flt: Filter,
        since: datetime | None = None,
        heartbeat_s: float = 15.0,
        expires_at: datetime | None = None,
        transport: Transport = "ws",
    ) -> None:
        self.id = next(_ids)
        self.hub = hub
        self.public = public
        self.filter = flt
        self.since = since
        self.heartbeat_s = heartbeat_s
        self.expires_at = expires_at
        self.transport = transport
        self.owner: tuple[int, str] | None = None
        self.outbox: Outbox[int] = Outbox()
        self.snapshot_wanted = True
        self.heartbeat_due = False
        self.errors: list[str] = []  # answers to bad client messages, sent in order
        self.events: list[str] = []  # event frames (SOS), each sent once, in order
        self.close_code: int | None = None
        self.close_reason = ""
        self.last_sent = time.monotonic()
        self.frames_sent = 0
        # Set while a frame is with the transport: a client that stopped reading
        # shows up here (and in /v1/live/stats) instead of slowing anyone down.
        self.blocked_since: float | None = None
        self._last_update: float | None = None
        self._wake = asyncio.Event()

    def __repr__(self) -> str:
        kind = "public" if self.public else "operator"
        return f"<ClientSession {self.id} {kind} {self.transport}>"

    def wake(self) -> None:
        self._wake.set()

    def close(self, code: int, reason: str) -> None:
        """Ask the frame loop to end; the transport then closes with ``code``."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        self.wake()

    def resubscribe(self, flt: Filter) -> None:
        self.hub.set_filter(self, flt)
        self.since = None
        self.snapshot_wanted = True
        self.outbox.clear()
        self.wake()

    def reject_message(self, reason: str) -> None:
        # Bounded: a client spamming bad messages gets the latest few answers.
        self.errors = [*self.errors[-7:], reason]
        self.wake()

    def push_event(self, frame: str) -> None:
        # Bounded like errors: a client that stopped reading keeps the newest 100.
        self.events = [*self.events[-99:], frame]
        self.wake()

    async def frames(self) -> AsyncIterator[str]:
        """Frames for this client until it is closed; waits while there is nothing to say."""
        while self.close_code is None:
            hold = self._hold()
            if hold is None:
                self._wake.clear()
                await self._wake.wait()
            elif hold > 0:
                # More changes coalesce into the outbox while we hold the frame.
                await asyncio.sleep(hold)
            else:
                for frame in self._render():
                    self.blocked_since = time.monotonic()
                    yield frame
                    self.blocked_since = None
                    self._sent()

    def _throttle(self) -> float:
        return frame_delay(self._last_update, time.monotonic(), self.hub.frame_interval_s)

    def _hold(self) -> float | None:
        """0 when a frame is due now, seconds to hold back, None when there is nothing."""
        if self.errors or self.events or self.heartbeat_due:
            return 0.0
        if self.snapshot_wanted or self.outbox:
            # Snapshots count too: a client re-subscribing in a loop gets a
            # few full snapshots a second, not one per message.
            return self._throttle()
        return None

    def _render(self) -> list[str]:
        hub = self.hub
        now = datetime.now(UTC)
        if self.errors:
            return [hub.error_frame(self.errors.pop(0))]
        if self.events:
            return [self.events.pop(0)]
        if (self.snapshot_wanted or self.outbox) and self._throttle() <= 0:
            self._last_update = time.monotonic()
            if self.snapshot_wanted:
                self.snapshot_wanted = False
                self.outbox.clear()
                since, self.since = self.since, None
                return [hub.snapshot_frame(self, now, since)]
            touched, states = self.outbox.take()
            return hub.change_frames(self, touched, states, now)
        self.heartbeat_due = False
        return [hub.heartbeat_frame(now)]

    def _sent(self) -> None:
        self.last_sent = time.monotonic()
        self.frames_sent += 1
        self.heartbeat_due = False
