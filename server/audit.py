"""The audit log of operator actions: recording one, and ``GET /v1/audit`` (admins).

Every route that changes a credential, an enrollment, a vehicle or a share
link records who did what to which record (docs/fleet.md). The entry is
written after the change succeeded; a failed write is logged, not answered as
an error, since the change itself is done and its answer is owed.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from litestar import Request, get

from server.access import access
from server.auth import Principal
from server.http import ApiError, query_time, services
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


@get("/v1/audit", tags=["fleet"], summary="Operator actions, newest first", opt=access("admin"))
async def list_audit(request: Request[Any, Any, Any]) -> list[dict[str, Any]]:
    query = request.query_params
    limit = _int_param(query.get("limit"), "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    before = _int_param(query.get("before"), "before", None, 1, 2**63 - 1)
    assert limit is not None
    # A time range as for tracks: from its start up to just before its end.
    since, until = query_time("from", query.get("from")), query_time("to", query.get("to"))
    if since and until and since >= until:
        raise ApiError(422, "from: must be before to")
    # Exact matches, each optional: "what happened to bus 17", "what did olga do".
    keys = ("actor", "action", "target_type", "target_id")
    match = AuditMatch(**{k: _text_param(query.get(k), k) for k in keys}, since=since, until=until)
    entries = await services(request).store.audit_entries(limit, before, match)
    return [audit_json(e) for e in entries]
