"""``GET /v1/live/public``: riders' vehicles as one cacheable JSON document.

The streams (``/ws/public``, ``/v1/live/public/stream``) cannot be cached; this
can. The body depends only on the hub's vehicles (no clock in it), so its
ETag stays the same until a bus moves or changes state, and with a short
``max-age`` nginx or a CDN answers thousands of riders from one copy (docs/rider.md).
Clients tell a vehicle's age from ``t`` and the answer's ``Date`` (plus ``Age``
when it came from a cache).
"""

from __future__ import annotations

import hashlib
from typing import Any

from litestar import Request, Response, get

from server.access import access
from server.live.bus import LiveBus

# Short: a rider sees a bus at most this much late on top of the stream's own pace.
MAX_AGE_S = 5
CACHE_CONTROL = f"public, max-age={MAX_AGE_S}"


def public_snapshot(bus: LiveBus) -> bytes:
    """Every vehicle in service as riders see it, ordered by id (so equal views hash equally)."""
    shown = sorted(
        (v.public_id, v.public_json) for v in bus.hub.vehicles.values() if v.pos.in_service
    )
    return ('{"vehicles":[' + ",".join(json for _, json in shown) + "]}").encode()


@get(
    "/v1/live/public",
    tags=["live"],
    summary="Riders' vehicles now, cacheable (ETag, short max-age)",
    opt=access("public"),
)
async def live_public(request: Request[Any, Any, Any]) -> Response[bytes]:
    body = public_snapshot(request.app.state.live)
    etag = '"' + hashlib.sha256(body).hexdigest()[:24] + '"'
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    wanted = request.headers.get("if-none-match", "")
    if etag in {t.strip().removeprefix("W/") for t in wanted.split(",")}:
        return Response(b"", status_code=304, headers=headers)
    return Response(body, status_code=200, media_type="application/json", headers=headers)
