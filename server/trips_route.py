"""``GET /v1/devices/{id}/trips``: the trip statistics of a device's track over a period.

The same period rules as the track (``server/tracks.py``: ``from``/``to``,
default the last hour, at most 7 days); the numbers come from
``server/trips.py``, over every stored fix (never the simplified track).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Request, get
from litestar.params import FromPath

from server.access import access
from server.http import FromTime, ToTime, query_time, services
from server.tracks import device_or_404, track_range
from server.trips import trip_stats
from server.vehicle import iso


@get(
    "/v1/devices/{device_id:int}/trips",
    tags=["fleet"],
    summary="Trip statistics of a device's track: distance, moving/stopped time, stops",
    opt=access("viewer"),
)
async def device_trips(
    request: Request[Any, Any, Any],
    device_id: FromPath[int],
    start: FromTime = None,
    end: ToTime = None,
) -> dict[str, Any]:
    svc = services(request)
    t0, t1 = track_range(query_time("from", start), query_time("to", end), datetime.now(UTC))
    device = await device_or_404(svc.store, device_id)
    stats = trip_stats(await svc.store.track(device_id, t0, t1)).as_json()
    return {
        "device_id": device_id,
        "name": device.name,
        "period": {"from": iso(t0), "to": iso(t1)},
        **stats,
    }
