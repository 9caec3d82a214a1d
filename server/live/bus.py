"""The live bus of one process: publish what ingest moved, consume what every process moved.

Two fixed channels, whatever the fleet or the number of screens:

- ``bustracker.live.positions``: batches of live positions, as ingest moved them;
- ``bustracker.live.events``: operator changes to a vehicle (service, route),
  devices' heartbeats (a phone heard from without GPS) and device events (SOS).

A channel per vehicle, route or client would be created on demand and never
cleaned up (Litestar's channels keep every name they saw), and per-client
subscribe/unsubscribe would race with publishes. Here each process subscribes
once at start-up and filters for its clients in memory (``hub.py``).

Publishing never makes ingest wait: the publisher keeps the newest position
per vehicle and a background task sends them in batches, so a slow or absent
Redis costs live latency, never a telemetry answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from litestar import Litestar
from litestar.channels import ChannelsPlugin, Subscriber
from redis.asyncio import Redis

from server.events import event_json
from server.live.backend import make_backend, redis_client
from server.live.close_codes import CLOSE_GOING_AWAY
from server.live.gate import PublicGate, descriptor_limit
from server.live.hub import Hub
from server.live.shutdown import on_stop_signal
from server.live.views import (
    WireError,
    decode_message,
    device_from_wire,
    encode_device,
    encode_event,
    encode_positions,
    encode_seen,
    encode_signout,
    event_frame,
    event_from_wire,
    position_from_wire,
    seen_from_wire,
    signout_from_wire,
)
from server.model import Device, DeviceView, Event, LivePosition, Seen
from server.settings import Settings
from server.store.base import Store

log = logging.getLogger(__name__)

PUBLIC_ID_KEY = "public_id_key"
POSITIONS = "bustracker.live.positions"
EVENTS = "bustracker.live.events"
CHANNELS = (POSITIONS, EVENTS)

PUBLISH_BATCH = 500  # positions per bus message; bounds one message to ~150 kB
PUBLISH_TIMEOUT_S = 2.0
RESYNC_RETRY_S = 5.0
WARN_EVERY_S = 30.0


class LiveBus:
    def __init__(self, settings: Settings, store: Store, *, frame_interval_s: float = 0.25) -> None:
        self.settings = settings
        self.store = store
        self._redis: Redis | None = (
            redis_client(settings.live.redis_url) if settings.live.redis_url else None
        )
        self.channels = ChannelsPlugin(
            backend=make_backend(self._redis, self.request_resync), channels=CHANNELS
        )
        self.hub = Hub(
            offline_after_s=settings.live.offline_after_s,
            public_key=None,  # the installation's, from the store: see start()
            frame_interval_s=frame_interval_s,
        )
        http = settings.http
        self.gate = PublicGate(
            total=http.public_streams_max,
            per_address=http.public_streams_per_address,
            fd_reserve=http.fd_reserve,
            fd_limit=descriptor_limit(),
            connects=(http.public_connects.count, http.public_connects.per_seconds),
        )
        # Newest unpublished position per vehicle: bounded by the fleet, and a
        # backlog behind a slow Redis holds only what is still worth sending.
        self._outgoing: dict[int, LivePosition] = {}
        self._outgoing_ready = asyncio.Event()
        self._subscriber: Subscriber | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._sending: set[asyncio.Task[None]] = set()  # heartbeats and events on their way
        self._resync_wanted = True
        self._next_resync = 0.0
        self._last_warning: dict[str, float] = {}
        self.counters = {
            "published": 0,
            "publish_superseded": 0,
            "publish_errors": 0,
            "bus_messages": 0,
            "bus_errors": 0,
            "resyncs": 0,
        }

    # -- publishing (called by ingest and the device endpoint) -------------------------

    async def publish(self, position: LivePosition) -> None:
        """The ``Services.publishers`` hook: returns at once, never waits for Redis.

        This process's own clients are served straight away, on the next turn
        of the loop (after the answer to the bus is on its way), rather than
        after the round trip through the channel; the copy that comes back
        from the channel is then not newer and is dropped. Other processes get
        it from the channel as usual.
        """
        asyncio.get_running_loop().call_soon(self._apply_local, position)
        if self._redis is None:
            # The in-memory channel reaches no other process: the round trip
            # through it would only bring back what was just applied.
            return
        queued = self._outgoing.get(position.device_id)
        if queued is not None:
            self.counters["publish_superseded"] += 1
            if queued.fix.t >= position.fix.t:
                return
        self._outgoing[position.device_id] = position
        self._outgoing_ready.set()

    def _apply_local(self, position: LivePosition) -> None:
        try:
            self.hub.apply_position(position, datetime.now(UTC))
        except Exception:
            log.exception("live bus: local update failed")

    async def publish_device(self, view: DeviceView) -> bool:
        """Tell every process an operator changed a vehicle; False if the bus is down.

        ``view`` is the device as the store now has it (its vehicle, route, threshold),
        the ``Services.device_publishers`` hook.
        """
        attrs = {
            "name": view.name,
            "route": view.route,
            "in_service": view.in_service,
            "fleet": view.fleet,
        }
        now = datetime.now(UTC)
        self.hub.apply_attrs(view.device_id, attrs, now, now)
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT_S):
                await self.channels.wait_published(encode_device(view, now), EVENTS)
            return True
        except Exception as exc:
            self._warn("publish", "live bus: device change not published: %r", exc)
            return False

    async def publish_seen(self, device_id: int, seen: Seen) -> None:
        """A heartbeat (``Services.seen_publishers``): the vehicle may now be ``no_gps``."""
        self._apply_seen(device_id, seen, datetime.now(UTC))
        self._send_event_message(encode_seen(device_id, seen), "heartbeat")

    async def publish_event(self, event: Event, device: Device) -> None:
        """A new device event (``Services.event_publishers``) for every operator's stream."""
        item = event_json(event, device)
        self._apply_event(item, datetime.now(UTC))
        self._send_event_message(encode_event(item), "event")

    async def publish_signout(self, user_id: int | None, family: str | None, reason: str) -> None:
        """End an operator's streams here and on every process (``Services.signout_publishers``).

        Waits for the bus (bounded), so the answer to the change that caused it
        comes after every process was told.
        """
        self.hub.end_streams(user_id, family, reason)
        await self._publish_event_message(encode_signout(user_id, family, reason), "sign-out")

    def _send_event_message(self, data: bytes, what: str) -> None:
        # In the background: the phone's answer never waits on Redis (the store has it).
        task = asyncio.create_task(self._publish_event_message(data, what))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _publish_event_message(self, data: bytes, what: str) -> None:
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT_S):
                await self.channels.wait_published(data, EVENTS)
        except Exception as exc:
            self._warn("publish", "live bus: %s not published: %r", what, exc)

    def _apply_seen(self, device_id: int, seen: Seen, now: datetime) -> None:
        vehicle = self.hub.vehicles.get(device_id)
        if vehicle is None:
            return  # never placed on the map: /v1/fleet/live lists it
        if vehicle.pos.seen is not None and vehicle.pos.seen.at >= seen.at:
            return
        self.hub.apply_attrs(device_id, {"seen": seen}, seen.at, now)

    def _apply_event(self, item: dict[str, Any], now: datetime) -> None:
        self.hub.apply_event(int(item["id"]), event_frame(item, now))

    def request_resync(self) -> None:
        """Reload live positions from the store soon (the bus may have lost messages)."""
        self._resync_wanted = True
        self._next_resync = 0.0

    # -- lifecycle ---------------------------------------------------------------------

    @asynccontextmanager
    async def redis_lifespan(self, app: Litestar) -> AsyncIterator[None]:
        """Entered before the channels plugin, so the client outlives its subscription."""
        try:
            yield
        finally:
            if self._redis is not None:
                await self._redis.aclose()

    @asynccontextmanager
    async def lifespan(self, app: Litestar) -> AsyncIterator[None]:
        await self.start()
        try:
            with on_stop_signal(self._closing):
                yield
        finally:
            await self.stop()

    def _closing(self) -> None:
        self.hub.close_all(CLOSE_GOING_AWAY, "server shutting down")

    async def start(self) -> None:
        # Rider ids come from a key kept with the data: every replica agrees on it, and
        # rotating JWT_SECRET or restarting leaves riders' ids (and their apps) alone.
        key = await self.store.installation_value(PUBLIC_ID_KEY, secrets.token_hex(32))
        self.hub.public_key = key.encode()
        # Subscribe before loading the snapshot: whatever is published meanwhile
        # waits in the subscriber and is merged after (older fixes are ignored).
        self._subscriber = await self.channels.subscribe(list(CHANNELS))
        await self._resync()
        self._tasks = [
            asyncio.create_task(self._consume(self._subscriber), name="live-consume"),
            asyncio.create_task(self._publish_loop(), name="live-publish"),
            asyncio.create_task(self._housekeeping(), name="live-housekeeping"),
        ]

    async def stop(self) -> None:
        self._closing()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await self._flush_outgoing()
        if self._sending:
            await asyncio.wait(self._sending, timeout=1.0)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._subscriber is not None:
            await self.channels.unsubscribe(self._subscriber)
            self._subscriber = None

    # -- background tasks --------------------------------------------------------------

    async def _publish_loop(self) -> None:
        while True:
            await self._outgoing_ready.wait()
            self._outgoing_ready.clear()
            await self._flush_outgoing()

    async def _flush_outgoing(self) -> None:
        while self._outgoing:
            keys = list(self._outgoing)[:PUBLISH_BATCH]
            batch = [self._outgoing.pop(k) for k in keys]
            data = encode_positions(batch, datetime.now(UTC), self.settings.live.offline_after_s)
            try:
                async with asyncio.timeout(PUBLISH_TIMEOUT_S):
                    await self.channels.wait_published(data, POSITIONS)
                self.counters["published"] += len(batch)
            except Exception as exc:
                # Dropped, not retried: the store has them, and the resync after
                # the bus comes back brings every process up to date.
                self.counters["publish_errors"] += len(batch)
                self._warn("publish", "live bus: %d positions not published: %r", len(batch), exc)

    async def _consume(self, subscriber: Subscriber) -> None:
        async for data in subscriber.iter_events():
            self.counters["bus_messages"] += 1
            try:
                self._handle(data)
            except WireError as exc:
                self.counters["bus_errors"] += 1
                self._warn("wire", "live bus: unreadable message skipped: %s", exc)
            except Exception:
                self.counters["bus_errors"] += 1
                log.exception("live bus: message handling failed")

    def _handle(self, data: bytes) -> None:
        message = decode_message(data)
        now = datetime.now(UTC)
        if "positions" in message:
            items = message["positions"]
            if not isinstance(items, list):
                raise WireError("positions is not a list")
            for item in items:
                self.hub.apply_position(position_from_wire(item), now)
        elif "device" in message:
            device_id, attrs, at = device_from_wire(message)
            self.hub.apply_attrs(device_id, attrs, at, now)
        elif "seen" in message:
            self._apply_seen(*seen_from_wire(message), now)
        elif "event" in message:
            self._apply_event(event_from_wire(message), now)
        elif "signout" in message:
            self.hub.end_streams(*signout_from_wire(message))
        else:
            raise WireError("neither positions, device, seen, event nor signout")

    async def _housekeeping(self) -> None:
        # Often enough that a vehicle shows offline within a quarter of the threshold.
        tick = min(1.0, max(0.1, self.settings.live.offline_after_s / 4))
        while True:
            await asyncio.sleep(tick)
            try:
                now = datetime.now(UTC)
                self.hub.check_states(now)
                self.hub.expire(now)
                self.hub.heartbeats(time.monotonic())
                if self._resync_wanted and time.monotonic() >= self._next_resync:
                    await self._resync()
            except Exception:
                log.exception("live bus: housekeeping failed")

    async def _resync(self) -> None:
        self._resync_wanted = False
        started = datetime.now(UTC)
        try:
            positions = await self.store.live_positions()
        except Exception as exc:
            self._resync_wanted = True
            self._next_resync = time.monotonic() + RESYNC_RETRY_S
            self._warn("resync", "live bus: cannot load live positions (%r); will retry", exc)
            return
        self.counters["resyncs"] += 1
        self.hub.resync(positions, datetime.now(UTC), started)

    def _warn(self, kind: str, message: str, *args: Any) -> None:
        # One line per kind per interval: an outage must not flood the log.
        now = time.monotonic()
        if now - self._last_warning.get(kind, -WARN_EVERY_S) >= WARN_EVERY_S:
            self._last_warning[kind] = now
            log.warning(message, *args)

    def stats(self) -> dict[str, Any]:
        return {
            **self.hub.stats(),
            **self.counters,
            "public_streams_cap": self.gate.total,
            "public_streams_refused": self.gate.refused,
            "backend": "redis" if self._redis is not None else "memory",
            "outgoing": len(self._outgoing),
        }
