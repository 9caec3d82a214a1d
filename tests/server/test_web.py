"""``GET /`` in a real browser: the page a person gets at the server's address.

The same path takes Traccar Client's reports (``tests/server/test_phones.py``);
a browser, naming no device, must get a readable page whose links work.
"""

from __future__ import annotations

from playwright.sync_api import Page

from tests.browser import screenshot
from tests.server.running import RunningServer


def test_a_browser_at_the_root_gets_the_landing_page(server: RunningServer, page: Page) -> None:
    response = page.goto(server.url + "/")
    assert response is not None and response.status == 200
    assert page.title() == "bustracker"
    assert page.locator("h1").inner_text() == "bustracker"
    assert "Traccar Client" in page.locator("body").inner_text()
    shot = screenshot(page, "landing")
    assert shot.stat().st_size > 0


def test_the_landing_pages_status_link_shows_the_server_healthy(
    server: RunningServer, page: Page
) -> None:
    page.goto(server.url + "/")
    with page.expect_navigation() as navigation:
        page.get_by_role("link", name="/health").click()
    assert page.url == server.url + "/health"
    response = navigation.value
    assert response is not None and response.status == 200
    health = response.json()
    assert health["status"] == "ok" and health["database"] == "ok"
    screenshot(page, "landing-health")
