"""Live positions pushed to screens: WebSocket and SSE, fed by ingest through the live bus.

``LivePlugin`` is the one thing ``server/app.py`` adds. It registers the
publisher ingest calls, the routes, and the start-up order: the store (app
lifespan) → the Redis client → the channels plugin → the bus and its hub.
See docs/live.md for the frames and docs/architecture.md for the layout.
"""

from __future__ import annotations

from litestar.config.app import AppConfig
from litestar.plugins import InitPluginProtocol

from server.live.auth import install_log_redaction
from server.live.bus import LiveBus
from server.live.devices import live_stats, patch_device
from server.live.snapshot import live_public
from server.live.sse import live_public_stream, live_stream
from server.live.ws import live_ws, live_ws_public
from server.services import Services

__all__ = ["LiveBus", "LivePlugin"]


class LivePlugin(InitPluginProtocol):
    def __init__(self, svc: Services, *, frame_interval_s: float = 0.25) -> None:
        self.bus = LiveBus(svc.settings, svc.store, frame_interval_s=frame_interval_s)
        svc.publishers.append(self.bus.publish)
        svc.event_publishers.append(self.bus.publish_event)
        svc.seen_publishers.append(self.bus.publish_seen)
        svc.device_publishers.append(self.bus.publish_device)
        svc.signout_publishers.append(self.bus.publish_signout)
        install_log_redaction()

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.route_handlers.extend(
            [
                live_ws,
                live_ws_public,
                live_stream,
                live_public_stream,
                live_public,
                patch_device,
                live_stats,
            ]
        )
        app_config.state["live"] = self.bus
        # Lifespans are entered in list order (after the app's own, which opens
        # the store) and left in reverse.
        app_config.lifespan.append(self.bus.redis_lifespan)
        self.bus.channels.on_app_init(app_config)
        app_config.lifespan.append(self.bus.lifespan)
        return app_config
