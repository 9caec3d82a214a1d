"""The live objects one server process holds, built once at start-up from Settings."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from server.auth import TokenIssuer
from server.device_tokens import DeviceTokens
from server.model import LivePosition
from server.ratelimit import Limiter
from server.settings import Settings
from server.store.base import Store

Publisher = Callable[[LivePosition], Awaitable[None]]


@dataclass
class Services:
    settings: Settings
    store: Store
    limiter: Limiter
    tokens: TokenIssuer
    devices: DeviceTokens
    # Called with each live position an accepted batch moved forward (the live bus).
    publishers: list[Publisher] = field(default_factory=list)

    async def publish(self, position: LivePosition) -> None:
        for publish in self.publishers:
            await publish(position)
