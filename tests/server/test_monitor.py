"""The wallboard at ``/monitor/`` in a real chromium: counts, fixes, the offline alert.

OFFLINE_AFTER is 3 s here, so a bus that stops reporting turns offline within
the test; the wallboard must show it, and the seed plan's alert (more than 10%
of the fleet offline) in plain words, without a reload.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from playwright.sync_api import Page, expect

from server.settings import RateLimit
from tests.browser import screenshot, wait_in_page
from tests.server.running import RunningServer, make_settings


@pytest.fixture(scope="module")
def wall(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = make_settings(
        tmp_path_factory.mktemp("monitor"),
        map_tile_url="",
        offline_after_s=3,
        rate_limit_api=RateLimit(10_000, 60),
    )
    running = RunningServer(settings).start()
    running.add_user("wall", "wallboard-pw-1", "viewer")
    yield running
    running.stop()


def report(server: RunningServer, token: str, lat: float) -> None:
    fix = {"t": datetime.now(UTC).isoformat(), "lat": lat, "lon": 9.19, "speed": 5.0}
    r = httpx.post(
        f"{server.url}/v1/telemetry/location",
        json={"fixes": [fix]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200, r.text


def test_the_wallboard_counts_the_fleet_and_raises_the_offline_alert(
    wall: RunningServer, page: Page
) -> None:
    tokens = [wall.add_device(f"bus-{i}", "5")[1] for i in range(1, 5)]
    for i, token in enumerate(tokens):
        report(wall, token, 45.46 + i / 1000)
    page.goto(wall.url + "/monitor/")
    page.get_by_label("Username").fill("wall")
    page.get_by_label("Password").fill("wallboard-pw-1")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#link")).to_have_text("live")
    expect(page.locator("#online")).to_have_text("4")
    expect(page.locator("#alert")).to_be_hidden()
    # Three keep reporting; bus-4 falls silent and turns offline: 1 of 4 is over 10%.
    for _ in range(3):
        for i, token in enumerate(tokens[:3]):
            report(wall, token, 45.47 + i / 1000)
    wait_in_page(page, "Number(document.querySelector('#fpm').textContent) >= 4")
    screenshot(page, "monitor-all-online")
    expect(page.locator("#offline")).to_have_text("1", timeout=15_000)
    # Which one, and since when: the list under the tiles names it.
    heard = re.compile(r"^bus-4: offline, last heard \d+ s ago$")
    expect(page.locator("#dark li")).to_have_text(heard)
    for i, token in enumerate(tokens[:3]):
        report(wall, token, 45.48 + i / 1000)
    expect(page.get_by_role("alert").filter(has_text="ALERT")).to_have_text(
        "ALERT: 25% of the fleet offline (1 of 4)"
    )
    # Readable from across a room: the numbers are big.
    size = page.locator("#offline").evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
    assert size >= 48
    screenshot(page, "monitor-offline-alert")
