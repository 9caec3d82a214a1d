"""The audit log of operator actions: recording one, and ``GET /v1/audit`` (admins).

Every route that changes a credential, an enrollment, a vehicle or a share
link records who did what to which record (docs/fleet.md). The entry is
written after the change succeeded; a failed write is logged, not answered as
an error, since the change itself is done and its answer is owed.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Request, get
from litestar.params import QueryParameter

from server.access import access
from server.auth import Principal
from server.http import ApiError, FromTime, ToTime, checked_range, query_time, services
from server.model import AuditEntry, AuditMatch
from server.store.base import Fleet
from server.vehicle import iso

log = logging.getLogger(__name__)

MAX_LIMIT = 500
DEFAULT_LIMIT = 100
MAX_MATCH = 200  # longer than any actor, action, type or id the server records


async def record(
    store: Fleet,
    actor: Principal | str,
    action: str,
    target_type: str,
    target_id: int | str,
    **detail: Any,
) -> None:
    """Append one entry: ``action`` like ``device.revoke``, on ``target_type`` ``target_id``."""
    who = actor if isinstance(actor, str) else actor.username
    entry = AuditEntry(datetime.now(UTC), who, action, target_type, str(target_id), detail)
    try:
        await store.add_audit(entry)
    except Exception:
        log.exception("audit: could not record %s on %s %s by %s", action, target_type,
                      target_id, who)  # fmt: skip


def audit_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": iso(entry.at),
        "actor": entry.actor,
        "action": entry.action,
        "target_type": entry.target_type,
        "target_id": entry.target_id,
        "detail": entry.detail,
    }


def _int_param(raw: str | None, name: str, default: int | None, lo: int, hi: int) -> int | None:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(422, f"{name}: must be an integer, got {raw[:20]!r}") from None
    if not lo <= value <= hi:
        raise ApiError(422, f"{name}: must be between {lo} and {hi}")
    return value


def _text_param(raw: str | None, name: str) -> str | None:
    if raw is None or raw == "":
        return None
    # Printable only: a NUL would reach PostgreSQL as an error, not as "no such entry".
    if len(raw) > MAX_MATCH or not raw.isprintable():
        raise ApiError(422, f"{name}: at most {MAX_MATCH} printable characters")
    return raw


# Read as text and checked here, so a bad value is our 422 naming it, not Litestar's 400.
Limit = Annotated[
    str | None,
    QueryParameter(
        name="limit", description=f"entries per page, 1..{MAX_LIMIT} (default {DEFAULT_LIMIT})"
    ),
]
Before = Annotated[
    str | None, QueryParameter(name="before", description="an entry id: the page older than it")
]
Actor = Annotated[
    str | None, QueryParameter(description="only this person's actions (a username, or cli)")
]
Action = Annotated[str | None, QueryParameter(description="only this action: device.revoke, ...")]
TargetType = Annotated[
    str | None, QueryParameter(description="only actions on this kind of record: device, ...")
]
TargetId = Annotated[
    str | None, QueryParameter(description="only actions on the record with this id")
]


@get("/v1/audit", tags=["fleet"], summary="Operator actions, newest first", opt=access("admin"))
async def list_audit(
    request: Request[Any, Any, Any],
    limit_text: Limit = None,
    before_text: Before = None,
    actor: Actor = None,
    action: Action = None,
    target_type: TargetType = None,
    target_id: TargetId = None,
    start: FromTime = None,
    end: ToTime = None,
) -> list[dict[str, Any]]:
    limit = _int_param(limit_text, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    before = _int_param(before_text, "before", None, 1, 2**63 - 1)
    assert limit is not None
    # A time range as for tracks: from its start up to just before its end.
    since, until = query_time("from", start), query_time("to", end)
    if since and until:
        checked_range(since, until)
    # Exact matches, each optional: "what happened to bus 17", "what did olga do".
    match = AuditMatch(
        _text_param(actor, "actor"),
        _text_param(action, "action"),
        _text_param(target_type, "target_type"),
        _text_param(target_id, "target_id"),
        since,
        until,
    )
    entries = await services(request).store.audit_entries(limit, before, match)
    return [audit_json(e) for e in entries]
