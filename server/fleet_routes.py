"""The routes of "operators run the fleet" (docs/fleet.md), registered by ``server/app.py``."""

from __future__ import annotations

from litestar.handlers import BaseRouteHandler

from server.audit import list_audit
from server.enroll import enroll, issue_code
from server.fleet import fleet_summary
from server.shares import create_share, list_shares, revoke_share, shared_vehicle
from server.vehicles import create_vehicle, delete_vehicle, list_vehicles, patch_vehicle

FLEET_ROUTES: list[BaseRouteHandler] = [
    issue_code,
    enroll,
    list_vehicles,
    create_vehicle,
    patch_vehicle,
    delete_vehicle,
    fleet_summary,
    create_share,
    list_shares,
    revoke_share,
    shared_vehicle,
    list_audit,
]
