"""The operator console at ``/console/`` in a real chromium, against a real server.

One server and one browser for the module. Access tokens live 4 s here, so
every test also runs across token renewals: the console must renew by itself
and its live stream must carry on (the server closes it with 4401 at expiry).
Tiles are off (no network in tests): the map shows its plain background.
OFFLINE_AFTER is 5 s, so a bus not reporting during a test turns offline in it.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import gpxpy
import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from server.gtfs_import import import_feed
from server.model import AuditEntry, Device
from server.settings import RateLimit
from server.shares import share_token_hash
from server.vehicle import EARTH_RADIUS_M
from tests.browser import screenshot, wait_in_page
from tests.server.gtfs_feeds import small_zip
from tests.server.running import RunningServer, make_settings

PASSWORD = "console-pw-1234"
OFFLINE_AFTER_S = 5  # short, so a bus that stops reporting turns offline within a test
M_PER_DEG = EARTH_RADIUS_M * math.pi / 180


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = make_settings(
        tmp_path_factory.mktemp("console"),
        map_tile_url="",
        jwt_access_expiry_s=4,
        offline_after_s=OFFLINE_AFTER_S,
        rate_limit_api=RateLimit(10_000, 60),
    )
    running = RunningServer(settings).start()
    running.add_user("olga", PASSWORD, "admin")
    yield running
    running.stop()


def report(server: RunningServer, token: str, *fixes: dict[str, Any]) -> None:
    r = httpx.post(
        f"{server.url}/v1/telemetry/location",
        json={"fixes": list(fixes)},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200, r.text


def fix(lat: float, lon: float, ago_s: float = 0, **more: Any) -> dict[str, Any]:
    t = datetime.now(UTC) - timedelta(seconds=ago_s)
    return {"t": t.isoformat(), "lat": lat, "lon": lon, **more}


def sign_in(page: Page, server: RunningServer) -> None:
    page.goto(server.url + "/console/")
    page.get_by_label("Username").fill("olga")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#link")).to_have_text("live")


def drawn(page: Page, device: Device) -> list[float] | None:
    at: list[float] | None = page.evaluate(f"window.bustracker.layer.drawnAt({device.id})")
    return at


@pytest.fixture(scope="module")
def desk(console: RunningServer, browser: Browser) -> Iterator[Page]:
    """One operator's console, signed in once and kept open through the module's tests."""
    context = browser.new_context(viewport={"width": 1024, "height": 700}, accept_downloads=True)
    page = context.new_page()
    yield page
    context.close()


# Where the replay's marker (the one circle of radius 9) is now.
REPLAY_MARKER = """(() => { let p; window.bustracker.map.eachLayer(l => {
  if (l.setRadius && l.options.radius === 9) p = l.getLatLng(); }); return [p.lat, p.lng]; })()"""


def tab(page: Page, name: str) -> None:
    page.get_by_role("tab", name=name).click()
    # A panel shows its last visit's state until it has read the API again.
    expect(page.locator(".view[aria-busy=true]")).to_have_count(0)


@pytest.fixture(scope="module")
def buses(console: RunningServer) -> dict[str, tuple[Device, str]]:
    fleet = {
        name: console.add_device(name, route)
        for name, route in (("bus-1", "5"), ("bus-2", "7"), ("bus-3", "5"))
    }
    report(console, fleet["bus-1"][1], fix(45.4650, 9.1900, speed=8.0, heading=90.0))
    report(console, fleet["bus-2"][1], fix(45.4700, 9.2000, speed=0.0))
    # bus-3 reports only now: offline 5 s later, and the table then lists it first.
    report(console, fleet["bus-3"][1], fix(45.4600, 9.1800, ago_s=60))
    return fleet


def test_a_wrong_password_is_refused_in_words(console: RunningServer, desk: Page) -> None:
    page = desk
    page.goto(console.url + "/console/")
    page.get_by_label("Username").fill("olga")
    page.get_by_label("Password").fill("not it")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("wrong username or password")
    screenshot(page, "console-signin-refused")


def test_signed_in_the_map_shows_the_buses_and_they_glide_to_new_fixes(
    console: RunningServer, buses: dict[str, tuple[Device, str]], desk: Page
) -> None:
    page = desk
    sign_in(page, console)
    bus1, token1 = buses["bus-1"]
    expect(page.locator("[data-count=vehicles] b")).to_have_text("3")
    assert drawn(page, bus1) == pytest.approx([45.4650, 9.1900], abs=1e-6)
    assert (
        page.evaluate("getComputedStyle(document.querySelector('#map')).backgroundImage") != "none"
    )
    screenshot(page, "console-map")
    # Watch the drawn position on every frame while a new fix arrives.
    page.evaluate(
        f"""() => {{ window.seen = []; const step = () => {{
            window.seen.push(window.bustracker.layer.drawnAt({bus1.id}));
            if (window.seen.length < 600) requestAnimationFrame(step); }};
            requestAnimationFrame(step); }}"""
    )
    report(console, token1, fix(45.4650, 9.1950, speed=9.0, heading=90.0))
    wait_in_page(page, f"Math.abs(window.bustracker.layer.drawnAt({bus1.id})[1] - 9.195) < 1e-6")
    lons = [p[1] for p in page.evaluate("window.seen") if p]
    between = [x for x in lons if 9.1900 + 1e-6 < x < 9.1950 - 1e-6]
    assert between, "the marker jumped instead of gliding"
    assert lons == sorted(lons), "the glide went backwards"


def test_the_live_stream_outlives_its_access_token(
    console: RunningServer, buses: dict[str, tuple[Device, str]], desk: Page
) -> None:
    page = desk
    first = page.evaluate("window.bustracker.live.ws.url")
    bus2, token2 = buses["bus-2"]
    # The first token expires after 4 s; the stream is reconnected with a renewed one.
    wait_in_page(
        page,
        f"(l => l.ws && l.ws.url !== {first!r} && l.status === 'live')(window.bustracker.live)",
    )
    report(console, token2, fix(45.4710, 9.2010, speed=3.0))
    wait_in_page(page, f"Math.abs(window.bustracker.layer.drawnAt({bus2.id})[0] - 45.471) < 1e-6")
    expect(page.locator("#signin")).to_be_hidden()


def test_the_fleet_table_puts_offline_first_filters_sorts_and_exports(
    console: RunningServer, buses: dict[str, tuple[Device, str]], desk: Page
) -> None:
    page = desk
    for name in ("bus-1", "bus-2"):
        report(console, buses[name][1], fix(45.4650, 9.1900, speed=5.0))
    tab(page, "Fleet")
    rows = page.locator("#fleet tbody tr")
    expect(rows).to_have_count(3)
    # bus-3 has been silent since the module began: offline, and listed first.
    expect(rows.first.locator("td").nth(1)).to_have_text("offline", timeout=15_000)
    expect(page.locator("[data-count=offline] b")).to_have_text("1")
    assert rows.first.locator("td").nth(0).inner_text() == "bus-3"
    assert rows.first.locator("td").nth(1).inner_text() == "offline"
    assert rows.nth(1).locator("td").nth(1).inner_text() == "online"
    screenshot(page, "console-fleet-table")
    page.get_by_role("button", name="Vehicle").click()
    expect(rows.first.locator("td").first).to_have_text("bus-1")
    page.get_by_label("Filter").fill("7")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("td").first).to_have_text("bus-2")
    page.get_by_label("Filter").fill("")
    with page.expect_download() as download:
        page.get_by_role("button", name="Export CSV").click()
    text = Path(download.value.path()).read_text()
    listed = {r["vehicle"]: r for r in csv.DictReader(io.StringIO(text))}
    assert set(listed) == {"bus-1", "bus-2", "bus-3"}
    assert listed["bus-3"]["state"] == "offline" and listed["bus-1"]["route"] == "5"


def test_a_devices_track_replays_with_its_trip_statistics(
    console: RunningServer, desk: Page
) -> None:
    page = desk
    _, token = console.add_device("bus-9", "14")
    # 2 min north at 10 m/s, a 60 s stop, 1 min on at 10 m/s: 1.8 km, one stop.
    start = 400
    fixes = [fix(45.0 + 10 * i / M_PER_DEG, 9.0, ago_s=start - i) for i in range(121)]
    fixes += [fix(45.0 + 1200 / M_PER_DEG, 9.0, ago_s=start - 120 - i) for i in range(1, 61)]
    fixes += [
        fix(45.0 + (1200 + 10 * i) / M_PER_DEG, 9.0, ago_s=start - 180 - i) for i in range(1, 61)
    ]
    report(console, token, *fixes)
    tab(page, "Fleet")
    page.locator("#fleet tbody tr", has_text="bus-9").click()
    detail = page.get_by_role("complementary", name="Vehicle detail")
    expect(detail.get_by_role("heading")).to_have_text("bus-9")
    detail.get_by_role("button", name="Show track").click()
    expect(detail.locator("[data-stat=Distance]")).to_have_text("1.80 km")
    expect(detail.locator("[data-stat=Stops]")).to_have_text("1")
    expect(detail.locator("[data-stat=Moving]")).to_have_text("3 min 0 s")
    expect(detail.locator("[data-stat=Stopped]")).to_have_text("1 min 0 s")
    expect(detail.locator("[data-stat='Max speed']")).to_have_text("36 km/h")
    expect(page.locator("#view-map")).to_be_visible()
    detail.get_by_label("Speed").select_option("60")
    detail.get_by_role("button", name="Play").click()
    expect(detail.get_by_role("button", name="Pause")).to_be_visible()
    wait_in_page(page, "document.querySelector('#slider').value > 50")
    screenshot(page, "console-replay")
    detail.get_by_role("button", name="Pause").click()
    detail.get_by_label("Replay time").fill("1000")
    expect(detail.locator("#replay-time")).not_to_have_text("")
    end = page.evaluate(REPLAY_MARKER)
    assert end == pytest.approx([45.0 + 1800 / M_PER_DEG, 9.0], abs=1e-6)
    # The same period as a file, every fix of it, for Google Earth or QGIS.
    with page.expect_download() as saved:
        detail.get_by_role("button", name="Download GPX").click()
    assert saved.value.suggested_filename.startswith("bus-9_")
    expect(detail.locator("#track-msg")).to_have_text(f"saved {saved.value.suggested_filename}")
    gpx = gpxpy.parse(Path(saved.value.path()).read_text())
    points = [p for t in gpx.tracks for s in t.segments for p in s.points]
    assert len(points) == len(fixes)
    assert points[-1].latitude == pytest.approx(45.0 + 1800 / M_PER_DEG)
    # More than a day is refused, in the server's words.
    two_days_ago = datetime.now() - timedelta(days=2)  # the browser's local time, as is ours
    detail.get_by_label("From").fill(two_days_ago.strftime("%Y-%m-%dT%H:%M:%S"))
    detail.get_by_role("button", name="Download GPX").click()
    refused = "GPX not saved: from/to: at most 1 day per request"
    expect(detail.locator("#track-msg")).to_have_text(refused)
    screenshot(page, "console-track-gpx-refused")


def test_an_admin_creates_a_device_and_revokes_it(console: RunningServer, desk: Page) -> None:
    page = desk
    page.keyboard.press("Escape")  # the detail left open by the replay
    tab(page, "Devices")
    page.get_by_label("Name", exact=True).fill("bus-40")
    page.get_by_label("Route", exact=True).fill("90")
    page.get_by_role("button", name="Create device").click()
    token = page.locator("[data-secret]").inner_text()
    report(console, token, fix(45.48, 9.21))  # the token shown works
    row = page.locator("#view-devices tr", has_text="bus-40")
    page.once("dialog", lambda d: d.accept())
    row.get_by_role("button", name="Revoke").click()
    expect(page.locator("#view-devices tr", has_text="bus-40").locator("td").nth(2)).to_have_text(
        "revoked"
    )
    refused = httpx.post(
        f"{console.url}/v1/telemetry/location",
        json={"fixes": [fix(45.48, 9.21)]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert refused.status_code == 401
    screenshot(page, "console-devices")


def test_an_admin_reads_in_the_audit_tab_who_did_what_and_pages_back(
    console: RunningServer, desk: Page
) -> None:
    page = desk
    # Just after the test above: olga made bus-40 and revoked it (in the console), then
    # makes bus-41 (over the API).
    olga = {"Authorization": f"Bearer {console.login('olga', PASSWORD)}"}
    made = httpx.post(f"{console.url}/v1/devices", json={"name": "bus-41"}, headers=olga)
    assert made.status_code == 201, made.text
    tab(page, "Audit")
    rows = page.locator("#audit tbody tr")
    expect(rows).to_have_count(3)
    texts = [[td.inner_text() for td in r.locator("td").all()][1:] for r in rows.all()]
    assert texts == [
        ["olga", "device.create", f"device bus-41 #{made.json()['id']}", "name: bus-41"],
        ["olga", "device.revoke", texts[1][2], ""],
        ["olga", "device.create", texts[1][2], "name: bus-40"],
    ]
    assert texts[1][2].startswith("device bus-40 #")
    expect(rows.first.locator("td").first).to_contain_text(" s ago")  # local time, its age
    screenshot(page, "console-audit")
    # What happened to one record: chosen by its name.
    page.get_by_label("Record").select_option(label="device bus-40")
    expect(page.locator("#view-audit[aria-busy=true]")).to_have_count(0)
    expect(rows).to_have_count(2)
    page.get_by_label("Who").fill("nobody")
    page.get_by_role("button", name="Filter", exact=True).click()
    expect(page.locator("#view-audit .empty")).to_have_text("No actions match these filters.")
    screenshot(page, "console-audit-empty")
    page.get_by_role("button", name="Clear filters").click()
    expect(page.get_by_label("Who")).to_have_value("")
    expect(rows).to_have_count(3)

    # Sixty newer entries: a page holds 50, "Older" brings the rest and olga's below them.
    async def busy_cli(store: Any) -> None:
        for i in range(60):
            await store.add_audit(AuditEntry(datetime.now(UTC), "cli", "enrollment.issue",
                                             "device", "999999", {"n": i}))  # fmt: skip

    console._with_store(busy_cli)
    tab(page, "Map")
    tab(page, "Audit")
    expect(rows).to_have_count(50)
    expect(rows.first.locator("td").nth(4)).to_have_text("n: 59")
    expect(rows.first.locator("td").nth(3)).to_have_text("device #999999")  # no such device
    page.get_by_role("button", name="Older").click()
    expect(page.locator("#view-audit p.muted")).to_contain_text("That is all.")
    expect(rows).to_have_count(63)
    expect(rows.nth(61).locator("td").nth(2)).to_have_text("device.revoke")
    expect(page.get_by_role("button", name="Older")).to_have_count(0)
    screenshot(page, "console-audit-older")

    # Days, in the browser's time zone (this machine's): one entry three days ago, at noon.
    noon = datetime.now().astimezone().replace(hour=12, minute=0, second=0, microsecond=0)
    then = noon - timedelta(days=3)
    console._with_store(lambda store: store.add_audit(
        AuditEntry(then.astimezone(UTC), "cli", "enrollment.issue", "device", "999999",
                   {"n": "old"})))  # fmt: skip
    page.get_by_label("From").fill(then.date().isoformat())
    page.get_by_label("To").fill(then.date().isoformat())
    page.get_by_role("button", name="Filter", exact=True).click()
    expect(rows).to_have_count(1)
    expect(rows.first.locator("td").nth(4)).to_have_text("n: old")
    screenshot(page, "console-audit-days")
    # From the day after: everything but that entry, the newest first.
    page.get_by_label("From").fill((then + timedelta(days=1)).date().isoformat())
    page.get_by_label("To").fill("")
    page.get_by_role("button", name="Filter", exact=True).click()
    expect(rows.first.locator("td").nth(4)).to_have_text("n: 59")
    page.get_by_role("button", name="Older").click()
    expect(rows).to_have_count(63)
    page.get_by_role("button", name="Clear filters").click()
    expect(page.get_by_label("From")).to_have_value("")


def test_on_a_tablet_the_detail_covers_the_map_and_closes_with_escape(
    console: RunningServer, buses: dict[str, tuple[Device, str]], browser: Browser, desk: Page
) -> None:
    # A sign-in of its own: two tabs sharing one refresh token would trip the server's
    # reuse detection (the first to renew makes the other's token a replay).
    context = browser.new_context(viewport={"width": 768, "height": 1024}, has_touch=True)
    try:
        page = context.new_page()
        sign_in(page, console)
        page.get_by_role("tab", name="Fleet").click()
        page.locator("#fleet tbody tr").first.focus()
        page.keyboard.press("Enter")
        detail = page.locator("#detail")
        expect(detail).to_be_visible()
        assert detail.bounding_box()["width"] == 768  # type: ignore[index]
        screenshot(page, "console-tablet-detail")
        page.keyboard.press("Escape")
        expect(detail).to_be_hidden()
    finally:
        context.close()


def test_a_vehicle_gets_a_unit_a_threshold_and_a_share_link_a_stranger_opens(
    console: RunningServer, buses: dict[str, tuple[Device, str]], desk: Page
) -> None:
    page = desk
    bus2, token2 = buses["bus-2"]
    # An assignment names a route of the routes list (D41): the operators' own here.
    made = httpx.post(f"{console.url}/v1/routes", json={"route_id": "7A", "short_name": "7A"},
                      headers=console.operator("operator"), timeout=30)  # fmt: skip
    assert made.status_code == 201, made.text
    tab(page, "Vehicles")
    page.get_by_label("Label").fill("Coach 2")
    page.get_by_role("button", name="Add vehicle").click()
    row = page.locator("#view-vehicles tr", has_text="Coach 2")
    row.get_by_label("Unit in Coach 2").select_option(label="bus-2")
    row.get_by_label("Route of Coach 2").select_option("7A")
    row.get_by_role("button", name="Save").click()
    expect(page.locator("#vehicle-msg")).to_have_text("Saved.")
    report(console, token2, fix(45.4720, 9.2020, speed=4.0))
    tab(page, "Fleet")
    coach = page.locator("#fleet tbody tr", has_text="Coach 2")
    expect(coach.locator("td").nth(4)).to_have_text("7A")
    coach.click()
    detail = page.locator("#detail")
    detail.get_by_label("Seconds").fill("30")
    detail.get_by_role("button", name="Save").click()
    expect(detail.locator("#offline-msg")).to_have_text("saved: 30 s")
    devices = httpx.get(f"{console.url}/v1/devices", headers=console.operator("viewer")).json()
    saved = next(d for d in devices["devices"] if d["id"] == bus2.id)
    assert saved["offline_after_s"] == 30
    detail.get_by_role("button", name="Create share link").click()
    link = detail.locator("#share-url")
    expect(link).to_be_visible()
    screenshot(page, "console-share-link")
    stranger = page.context.browser.new_page()  # type: ignore[union-attr]
    try:
        # The public page: no sign-in, the bus where it last reported, the link's expiry.
        stranger.goto(console.url + str(link.get_attribute("href")))
        expect(stranger.get_by_role("heading")).to_have_text("Coach 2")
        expect(stranger.get_by_role("status")).to_contain_text("Link valid until")
        marker = "(m => [m.getLatLng().lat, m.getLatLng().lng])(window.bustracker.marker)"
        assert stranger.evaluate(marker) == [45.4720, 9.2020]
        screenshot(stranger, "share-page")
        detail.get_by_role("button", name="Revoke link").click()
        expect(detail.locator("#shares li")).to_have_count(0)
        # The open page notices by itself at its next poll (every 5 s).
        expect(stranger.get_by_role("status")).to_have_text(
            "This share link is not valid (it may have been revoked).", timeout=15_000
        )
        assert stranger.evaluate("window.bustracker.marker") is None
        screenshot(stranger, "share-page-revoked")
        # A link past its expiry (the shortest one lasts a minute: made in the store here).
        vehicles = console._with_store(lambda store: store.list_vehicles())
        coach = next(v.id for v in vehicles if v.label == "Coach 2")
        then = datetime.now(UTC) - timedelta(days=2)
        expired = share_token_hash("expired-link")
        console._with_store(lambda store: store.add_share(
            coach, expired, "ops", then, then + timedelta(days=1)))  # fmt: skip
        stranger.goto(f"{console.url}/share/expired-link")
        expect(stranger.get_by_role("status")).to_have_text("This share link has expired.")
        assert stranger.evaluate("window.bustracker.marker") is None
        screenshot(stranger, "share-page-expired")
    finally:
        stranger.close()


# -- routes and users (the issue "Operators run the fleet") -----------------------------------


def test_an_admin_adds_a_route_and_assigns_it_to_a_vehicle_from_the_list(
    console: RunningServer, buses: dict[str, tuple[Device, str]], desk: Page
) -> None:
    page = desk
    bus1, token1 = buses["bus-1"]
    page.keyboard.press("Escape")  # the detail left open by the share link
    tab(page, "Routes")
    form = page.locator("#new-route")
    form.get_by_label("Route id").fill("N5")
    form.get_by_label("Short name").fill("N5")
    form.get_by_label("Long name").fill("Night line")
    form.get_by_label("Colour").fill("#0b6e4f")
    form.get_by_role("button", name="Add route").click()
    expect(page.locator("#route-msg")).to_have_text("Added route N5.")
    row = page.locator("#view-routes tr[data-route=N5]")
    expect(row.locator("td").nth(4)).to_have_text("operator")
    screenshot(page, "console-routes")
    tab(page, "Vehicles")
    page.get_by_label("Label").fill("Coach 5")
    page.get_by_role("button", name="Add vehicle").click()
    expect(page.locator("#vehicle-msg")).to_have_text("Added Coach 5.")
    coach = page.locator("#view-vehicles tr", has_text="Coach 5")
    coach.get_by_label("Unit in Coach 5").select_option(label="bus-1")
    # The route is picked from the routes list (short names), not typed.
    choice = coach.get_by_label("Route of Coach 5")
    assert choice.evaluate("e => e.tagName") == "SELECT"
    assert "N5 · Night line" in choice.locator("option").all_inner_texts()
    choice.select_option(label="N5 · Night line")
    coach.get_by_label("Trip of Coach 5").fill("night-1")
    coach.get_by_role("button", name="Save").click()
    expect(page.locator("#vehicle-msg")).to_have_text("Saved.")
    screenshot(page, "console-vehicle-route-select")
    olga = {"Authorization": f"Bearer {console.login('olga', PASSWORD)}"}  # tokens live 4 s
    listed = httpx.get(f"{console.url}/v1/vehicles", headers=olga).json()["vehicles"]
    saved = next(v for v in listed if v["label"] == "Coach 5")
    assert (saved["route_id"], saved["trip_id"]) == ("N5", "night-1")
    report(console, token1, fix(45.4660, 9.1920, speed=6.0, heading=90.0))
    tab(page, "Fleet")
    cell = page.locator("#fleet tbody tr", has_text="Coach 5").locator("td").nth(4)
    expect(cell).to_have_text("N5")
    expect(cell.locator(".chip")).to_have_attribute("data-colour", "#0B6E4F")
    expect(cell.locator(".chip")).to_have_attribute("title", "Night line")
    # On the map the marker's outline is the route's colour.
    outline = f"window.bustracker.layer.items.get({bus1.id})?.outline"
    wait_in_page(page, f"{outline} === '#0B6E4F'")
    screenshot(page, "console-fleet-route-colour")


def test_the_fleet_table_names_a_route_by_its_short_name_in_its_colours(
    console: RunningServer, buses: dict[str, tuple[Device, str]], desk: Page
) -> None:
    page = desk
    olga = {"Authorization": f"Bearer {console.login('olga', PASSWORD)}"}
    made = httpx.post(f"{console.url}/v1/routes", headers=olga, timeout=30, json={
        "route_id": "L12", "short_name": "12", "long_name": "Harbour - Station",
        "color": "FFD100"})  # fmt: skip
    assert made.status_code == 201, made.text
    _, token = console.add_device("bus-12", "L12")
    report(console, token, fix(45.4680, 9.1960, speed=5.0))
    tab(page, "Fleet")  # routes added meanwhile (here by the API) are read again
    cell = page.locator("#fleet tbody tr", has_text="bus-12").locator("td").nth(4)
    chip = cell.locator(".chip")
    expect(chip).to_have_text("12")
    expect(chip).to_have_attribute("title", "Harbour - Station")
    expect(chip).to_have_attribute("data-colour", "#FFD100")
    # Yellow reads with black text (the route gave none).
    assert chip.evaluate("e => getComputedStyle(e).color") == "rgb(0, 0, 0)"
    # A route the list does not know stays its id, plain.
    bus3 = page.locator("#fleet tbody tr", has_text="bus-3").locator("td").nth(4)
    expect(bus3).to_have_text("5")
    expect(bus3.locator(".chip")).to_have_count(0)
    page.get_by_label("Filter").fill("L12")  # the id still finds it
    expect(page.locator("#fleet tbody tr")).to_have_count(1)
    page.get_by_label("Filter").fill("")
    screenshot(page, "console-fleet-route-names")


def test_a_feed_route_is_read_only_and_the_server_says_why(
    console: RunningServer, desk: Page, tmp_path: Path
) -> None:
    page = desk
    feed = tmp_path / "feed.zip"
    feed.write_bytes(small_zip())
    console._with_store(lambda store: import_feed(store, feed))
    tab(page, "Routes")
    row = page.locator("#view-routes tr[data-route=R1]")
    expect(row.locator("td").nth(4)).to_have_text("GTFS feed")
    expect(row.get_by_role("textbox")).to_have_count(0)  # nothing to type into
    expect(row).to_contain_text("from the feed: change the feed")
    row.get_by_role("button", name="Edit").click()
    expect(page.locator("#route-msg")).to_have_text(
        "Route R1 not changed: route 'R1' comes from the GTFS feed: change the feed"
    )
    screenshot(page, "console-routes-feed-refused")


def test_an_admin_manages_users_and_a_viewer_sees_no_users_tab(
    console: RunningServer, browser: Browser, desk: Page
) -> None:
    page = desk
    tab(page, "Users")
    form = page.locator("#new-user")
    form.get_by_label("Username").fill("vera")
    form.get_by_label("Password").fill("viewer-pw-1234")
    form.get_by_label("Role").select_option("viewer")
    form.get_by_role("button", name="Add user").click()
    msg = page.locator("#user-msg")
    expect(msg).to_have_text("Added vera (viewer).")
    vera = page.locator("#view-users tr", has_text="vera")
    expect(vera.get_by_label("Role of vera")).to_have_value("viewer")

    context = browser.new_context(viewport={"width": 1024, "height": 700})
    try:
        other = context.new_page()
        other.goto(console.url + "/console/")
        other.get_by_label("Username").fill("vera")
        other.get_by_label("Password").fill("viewer-pw-1234")
        other.get_by_role("button", name="Sign in").click()
        expect(other.locator("#who")).to_have_text("vera (viewer)")
        expect(other.get_by_role("tab", name="Routes")).to_be_visible()
        expect(other.locator("[role=tab][data-view=users]")).to_be_hidden()
        expect(other.locator("[role=tab][data-view=audit]")).to_be_hidden()
        other.get_by_role("tab", name="Routes").click()
        expect(other.locator("#view-routes tr[data-route=N5]")).to_be_visible()
        expect(other.locator("#new-route")).to_have_count(0)  # a viewer only reads
        # Her own password, from "My account": the old one stops working.
        other.get_by_role("tab", name="My account").click()
        other.get_by_label("Current password").fill("viewer-pw-1234")
        other.get_by_label("New password").fill("vera-new-pw-5678")
        other.get_by_role("button", name="Change my password").click()
        expect(other.locator("#account-msg")).to_have_text(
            "Password changed. Your other sign-ins have ended."
        )
        # This tab carries on with the new tokens: still signed in, the stream live again.
        other.get_by_role("tab", name="Map").click()
        expect(other.locator("#link")).to_have_text("live")
        expect(other.locator("#signin")).to_be_hidden()
        screenshot(other, "console-viewer-account")
    finally:
        context.close()
    login = f"{console.url}/v1/auth/login"
    old = {"username": "vera", "password": "viewer-pw-1234"}
    assert httpx.post(login, json=old).status_code == 401
    assert httpx.post(login, json={**old, "password": "vera-new-pw-5678"}).status_code == 200

    vera.get_by_label("Role of vera").select_option("operator")
    vera.get_by_role("button", name="Change role").click()
    expect(msg).to_have_text("vera is now operator.")
    expect(
        page.locator("#view-users tr", has_text="vera").get_by_label("Role of vera")
    ).to_have_value("operator")
    page.once("dialog", lambda d: d.accept())
    page.locator("#view-users tr", has_text="vera").get_by_role("button", name="Delete").click()
    expect(msg).to_have_text("Deleted vera.")
    expect(page.locator("#view-users tr", has_text="vera")).to_have_count(0)
    assert httpx.post(login, json={**old, "password": "vera-new-pw-5678"}).status_code == 401
    # The audit log names her still, from what her deletion kept.
    tab(page, "Audit")
    newest = page.locator("#audit tbody tr").first.locator("td")
    expect(newest.nth(2)).to_have_text("user.delete")
    expect(newest.nth(3)).to_contain_text("user vera #")
    expect(page.locator("#audit tbody tr").nth(1).locator("td").nth(4)).to_have_text(
        "username: vera · role: operator"
    )
    screenshot(page, "console-audit-users")


def test_the_last_admin_cannot_be_demoted_or_deleted_and_is_told_why(
    console: RunningServer, desk: Page
) -> None:
    page = desk
    tab(page, "Users")
    olga = page.locator("#view-users tr", has_text="olga")
    olga.get_by_label("Role of olga").select_option("viewer")
    olga.get_by_role("button", name="Change role").click()
    msg = page.locator("#user-msg")
    why = "the last admin cannot be demoted or deleted; make another admin first"
    expect(msg).to_have_text(f"Role not changed for olga: {why}")
    expect(olga.get_by_label("Role of olga")).to_have_value("admin")  # what is stored
    screenshot(page, "console-last-admin-refused")
    page.once("dialog", lambda d: d.accept())
    olga.get_by_role("button", name="Delete").click()
    expect(msg).to_have_text(f"Not deleted for olga: {why}")
    expect(page.locator("#who")).to_have_text("olga (admin)")
