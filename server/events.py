"""Device events (a phone's SOS): how they look, and ``GET /v1/devices/{id}/events``.

Events are stored (``events`` table, once per device, time and kind) and pushed
live to operators' streams as ``{"type": "event", …}`` frames (docs/live.md).
This route is the history: what a console that was not connected missed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from litestar import Request, get
from litestar.params import FromPath, QueryParameter

from server.access import access
from server.http import ToTime, checked_range, query_time, services
from server.model import Device, Event
from server.tracks import device_or_404
from server.vehicle import iso

DEFAULT_EVENT_RANGE = timedelta(days=7)
MAX_EVENT_RANGE = timedelta(days=31)


def event_json(event: Event, device: Device) -> dict[str, Any]:
    return {
        "id": event.id,
        "device_id": event.device_id,
        "name": device.name,
        "route": device.route,
        "kind": event.kind,
        "t": iso(event.t),
        "received_at": iso(event.received_at),
        "lat": event.lat,
        "lon": event.lon,
    }


def event_range(
    start: datetime | None, end: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    """Defaults: the last 7 days up to now (a little past, for clocks ahead); at most 31 days."""
    if end is None:
        end = now + timedelta(minutes=10) if start is None else start + DEFAULT_EVENT_RANGE
    if start is None:
        start = end - DEFAULT_EVENT_RANGE
    return checked_range(start, end, MAX_EVENT_RANGE)


@get(
    "/v1/devices/{device_id:int}/events",
    tags=["devices"],
    summary="A device's events (SOS) between two times, oldest first",
    opt=access("viewer"),
)
async def device_events(
    request: Request[Any, Any, Any],
    device_id: FromPath[int],
    start: Annotated[
        str | None,
        QueryParameter(
            name="from", description="ISO 8601 with offset, or epoch seconds; default 7 days ago"
        ),
    ] = None,
    end: ToTime = None,
) -> dict[str, Any]:
    svc = services(request)
    t0, t1 = event_range(query_time("from", start), query_time("to", end), datetime.now(UTC))
    device = await device_or_404(svc.store, device_id)
    events = await svc.store.events(device_id, t0, t1)
    return {
        "device_id": device_id,
        "name": device.name,
        "from": iso(t0),
        "to": iso(t1),
        "events": [event_json(e, device) for e in events],
    }
