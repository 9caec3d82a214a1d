"""``GET /`` for a browser: the rider app (``server/rider/``, docs/rider.md).

``/`` is also where Traccar Client reports by default; a request that names a
device (``id``) is an OsmAnd report and never reaches this page
(``server/osmand_route.py``).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response

from server.rider import rider_page


def landing_page(request: Request[Any, Any, Any]) -> Response[bytes]:
    return rider_page(request)
