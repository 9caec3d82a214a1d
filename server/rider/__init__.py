"""The rider app (a PWA at ``/``): its files and the routes that serve them. See docs/rider.md."""

from __future__ import annotations

from server.rider.files import rider_file, rider_page, rider_root_file

ROUTES = [rider_file, rider_root_file]

__all__ = ["ROUTES", "rider_page"]
