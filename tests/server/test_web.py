"""``GET /``: a browser gets the rider app, a phone naming its device reports a fix.

The same path takes Traccar Client's reports (``tests/server/test_phones.py``).
The page in a real browser is ``tests/e2e/test_rider.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from tests.server.running import RunningServer


def test_a_browser_at_the_root_gets_the_rider_app_with_the_tile_settings(
    server_factory: Callable[..., RunningServer],
) -> None:
    server = server_factory()
    r = httpx.get(server.url + "/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "<title>Buses live</title>" in r.text
    assert (
        '<meta name="bt-tiles" content="https://tile.openstreetmap.org/{z}/{x}/{y}.png">' in r.text
    )
    assert '<meta name="bt-attribution" content="© OpenStreetMap contributors">' in r.text
    # A phone naming its device at the same address is a report, not a page view.
    _, token = server.add_device("phone-root")
    report = httpx.get(
        server.url + "/",
        params={"id": token, "timestamp": int(time.time()), "lat": 45.1, "lon": 9.1},
    )
    assert report.status_code == 200 and report.json()["accepted"] == 1, report.text

    # MAP_TILE_URL set but empty: no tiles; the attribution text is escaped into the page.
    plain = server_factory(map_tile_url="", map_tile_attribution='Tiles "Ours" & co')
    page = httpx.get(plain.url + "/").text
    assert '<meta name="bt-tiles" content="">' in page
    assert '<meta name="bt-attribution" content="Tiles &quot;Ours&quot; &amp; co">' in page
