"""The live objects one server process holds, built once at start-up from Settings."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from server.agent_reports import AgentReports
from server.auth import TokenIssuer
from server.device_tokens import DeviceTokens
from server.model import Device, DeviceView, Event, LivePosition, Seen
from server.ratelimit import Limiter
from server.settings import Settings
from server.store.base import Store

Publisher = Callable[[LivePosition], Awaitable[None]]
EventPublisher = Callable[[Event, Device], Awaitable[None]]
SeenPublisher = Callable[[int, Seen], Awaitable[None]]
DevicePublisher = Callable[[DeviceView], Awaitable[bool]]
# (user id, sign-in family, reason): end the streams of a user (any sign-in) or of one sign-in.
SignoutPublisher = Callable[[int | None, str | None, str], Awaitable[None]]


@dataclass
class Services:
    settings: Settings
    store: Store
    limiter: Limiter
    tokens: TokenIssuer
    devices: DeviceTokens
    agents: AgentReports
    # Called with each live position an accepted batch moved forward (the live bus).
    publishers: list[Publisher] = field(default_factory=list)
    # Called with each newly stored device event (SOS) and each heartbeat.
    event_publishers: list[EventPublisher] = field(default_factory=list)
    seen_publishers: list[SeenPublisher] = field(default_factory=list)
    # Called with a device whose view an operator (or a refused call) changed.
    device_publishers: list[DevicePublisher] = field(default_factory=list)
    signout_publishers: list[SignoutPublisher] = field(default_factory=list)

    async def publish(self, position: LivePosition) -> None:
        for publish in self.publishers:
            await publish(position)

    async def publish_event(self, event: Event, device: Device) -> None:
        for publish in self.event_publishers:
            await publish(event, device)

    async def publish_device(self, view: DeviceView | None) -> bool:
        """Tell every process's screens; False when some publisher could not (Redis down)."""
        if view is None:
            return True
        results = [await publish(view) for publish in self.device_publishers]
        return all(results)

    async def publish_seen(self, device_id: int, seen: Seen) -> None:
        for publish in self.seen_publishers:
            await publish(device_id, seen)

    async def end_streams(
        self, reason: str, *, user_id: int | None = None, family: str | None = None
    ) -> None:
        for publish in self.signout_publishers:
            await publish(user_id, family, reason)
