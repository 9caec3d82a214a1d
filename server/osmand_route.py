"""``/osmand`` and ``/``: OsmAnd reports (Traccar Client) through the shared ingest steps.

Traccar Client's default server URL is the host root, so ``/`` takes reports
too: a request naming a device (``id`` or ``deviceid`` in the query), or any
POST, is a report; a browser's ``GET /`` gets the rider app
(``server/web.py``). Both paths run this one handler and one decoder. The
route declares the ``device`` rule (``server/access.py``); the token is the
``id`` in the query or the body, so ingest's ``admit`` is what checks it.

Answers follow from how these clients behave: anything but a 200 makes them
keep the report and resend it, oldest first, with backoff, forever. So a
report that can be read but whose fix fails validation is answered 200 with
the reason, as in protocol v1; only a wrong token (401), an exhausted budget
(429), an unreadable request (4xx) or a store that is away (503) are refused.

Beyond fixes, a report may be a heartbeat (no position: the phone is marked
seen, so it shows as reachable without GPS rather than offline) and may carry
``alarm`` (an event, stored once and pushed to operators).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from litestar import Request, Response, route

from server.access import access
from server.http import ApiError, services
from server.ingest import Admission, admit, commit
from server.model import Event, FixIn, Seen
from server.osmand import Report, decode, has_token
from server.services import Services
from server.validation import Batch, BodyError, Rejection, check_time, validate_fix
from server.web import landing_page

MISSING_TOKEN = "missing device token: put it in the 'id' parameter"


def judge(report: Report, now: datetime, tolerance: timedelta) -> Batch:
    """Validate each fix as protocol v1 does, keeping what phones add (accuracy, battery)."""
    good: list[tuple[int, FixIn]] = []
    rejected: list[Rejection] = []
    for index, reading in enumerate(report.fixes):
        try:
            if isinstance(reading, ValueError):
                raise reading
            fix = validate_fix(reading.wire, now, tolerance)
        except ValueError as exc:
            rejected.append(Rejection(index, str(exc)))
            continue
        extra = replace(
            fix, accuracy=reading.accuracy, battery=reading.battery, charge=reading.charge
        )
        good.append((index, extra))
    return Batch(good, rejected)


def event_time(report: Report, batch: Batch, now: datetime, tolerance: timedelta) -> datetime:
    """The report's own time when it is believable, else the time of arrival."""
    if batch.fixes:
        return batch.fixes[-1][1].t
    if report.t is not None:
        try:
            return check_time(report.t, now, tolerance)
        except ValueError:
            pass
    return now


async def raise_alarm(
    svc: Services, admission: Admission, report: Report, batch: Batch, now: datetime
) -> dict[str, Any]:
    """Store the report's alarm as an event; publish it if it is new (not a resend)."""
    assert report.alarm is not None
    tolerance = timedelta(seconds=svc.settings.limits.future_tolerance_s)
    where = batch.fixes[-1][1] if batch.fixes else None
    event = Event(
        device_id=admission.device.id,
        kind=report.alarm,
        t=event_time(report, batch, now, tolerance),
        received_at=now,
        lat=where.lat if where else None,
        lon=where.lon if where else None,
    )
    stored = await svc.store.add_event(event)
    if stored is not None:
        await svc.publish_event(stored, admission.device)
    return {"kind": event.kind, "duplicate": stored is None}


async def mark_seen(svc: Services, admission: Admission, report: Report, now: datetime) -> None:
    seen = Seen(now, report.battery, report.charge)
    await svc.store.mark_seen(admission.device.id, seen)
    await svc.publish_seen(admission.device.id, seen)


@route(
    ["/osmand", "/"],
    http_method=["GET", "POST"],
    status_code=200,
    tags=["telemetry"],
    summary="Report in the OsmAnd protocol (Traccar Client); GET / without id: the rider app",
    opt=access("device"),
)
async def osmand(request: Request[Any, Any, Any]) -> Response[Any]:
    svc = services(request)
    settings = svc.settings
    query = [(str(k), str(v)) for k, v in request.query_params.multi_items()]
    if request.url.path == "/" and request.method == "GET" and not has_token(dict(query)):
        return landing_page(request)
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > settings.limits.max_body_bytes:
        raise ApiError(413, f"body larger than {settings.limits.max_body_bytes} bytes")
    body = await request.body()
    now = datetime.now(UTC)
    try:
        report = decode(
            query, body, request.headers.get("content-type"), now, settings.limits.max_batch
        )
    except BodyError as exc:
        raise ApiError(exc.status, exc.reason) from None
    # One fix per request is Traccar Client's way: budget fixes, not requests.
    cost = max(1, len(report.fixes))
    admission = await admit(request, report.token, MISSING_TOKEN, "osmand", cost)
    batch = judge(report, now, timedelta(seconds=settings.limits.future_tolerance_s))
    answer = await commit(request, admission, batch, now, "osmand")
    out = answer.body(settings, "osmand")
    if answer.accepted == 0:
        # Nothing new stored (a heartbeat, a resend, a fix refused): the phone is
        # still reachable, which is what an operator must not see as "offline".
        await mark_seen(svc, admission, report, now)
        out["seen"] = True
    if report.alarm is not None:
        out["alarm"] = await raise_alarm(svc, admission, report, batch, now)
    if report.problems:
        out["ignored"] = report.problems
    return Response(out, status_code=200, headers=admission.headers)
