"""The public share page ``/share/<token>`` in a real chromium, with no sign-in.

An operator shares a vehicle; a stranger with the link sees that bus on a map
and where it moves, and sees the link die when it is revoked. A made-up token
gets the same page, saying the link is not valid.
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from playwright.sync_api import Page, expect

from tests.browser import screenshot
from tests.server.running import RunningServer


def test_a_shared_bus_is_shown_until_its_link_is_revoked(
    server_factory: object, page: Page
) -> None:
    server: RunningServer = server_factory(map_tile_url="")  # type: ignore[operator]
    device, token = server.add_device("bus-12", "5")
    ops = server.operator("operator")
    vehicle = httpx.post(f"{server.url}/v1/vehicles", json={"label": "Coach 12"}, headers=ops)
    assert vehicle.status_code == 201, vehicle.text
    vid = vehicle.json()["id"]
    r = httpx.patch(f"{server.url}/v1/vehicles/{vid}", json={"device_id": device.id}, headers=ops)
    assert r.status_code == 200, r.text
    fix = {"t": datetime.now(UTC).isoformat(), "lat": 45.4651, "lon": 9.1909}
    httpx.post(
        f"{server.url}/v1/telemetry/location",
        json={"fixes": [fix]},
        headers={"Authorization": f"Bearer {token}"},
    ).raise_for_status()
    share = httpx.post(f"{server.url}/v1/vehicles/{vid}/share", json={}, headers=ops).json()
    page.goto(server.url + share["url"])
    expect(page.get_by_role("heading")).to_have_text("Coach 12")
    expect(page.get_by_role("status")).to_contain_text("online")
    expect(page.get_by_role("status")).to_contain_text("Link valid until")
    at = page.evaluate("(m => [m.getLatLng().lat, m.getLatLng().lng])(window.bustracker.marker)")
    assert at == [45.4651, 9.1909]
    screenshot(page, "share-page")
    r = httpx.delete(f"{server.url}/v1/shares/{share['id']}", headers=ops)
    assert r.status_code == 200
    expect(page.get_by_role("status")).to_have_text(
        "This share link is not valid (it may have been revoked).", timeout=15_000
    )
    assert page.evaluate("window.bustracker.marker") is None
    page.goto(server.url + "/share/made-up-token")
    expect(page.get_by_role("status")).to_contain_text("not valid")
    screenshot(page, "share-page-revoked")
