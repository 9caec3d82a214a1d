"""The rider app at ``/`` in Debian's chromium at phone size (390x844), against a real server.

One server and one browser for the module, and the module's buses registered
in one go; each test opens its own browser context (its own service worker,
cache and storage) and watches buses named for it. There is no network: map
tile requests are refused, as on a phone that cannot reach the tile server,
and the map must still show the buses. Screenshots go to
``test-output/screenshots/rider-*.png``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from server.auth import hash_device_token, new_device_token
from server.gtfs_import import import_feed
from server.settings import RateLimit
from server.store import open_store
from tests.browser import screenshot, wait_in_page
from tests.server.gtfs_feeds import small_zip
from tests.server.live_client import PUBLIC_VEHICLE_KEYS, fix, post_fixes
from tests.server.running import RunningServer, make_settings, run_async
from tests.server.test_rider import contrast

PHONE = {"width": 390, "height": 844}
FIRST_VIEW_LIMIT = 150_000  # bytes transferred for the first view, map tiles excluded (issue 11)
WAIT_MS = 15_000
STALE = re.compile(r"\bstale\b")
# What riders may see of a bus (docs/live.md): no device id, no token.
PUBLIC_FIELDS = set(PUBLIC_VEHICLE_KEYS)
# name -> route; every test watches its own.
BUSES = {
    "bus-first": "5",
    "bus-move": "5",
    "bus-r11": "11",
    "bus-r12": "11",  # moved to route 12 through the device API by its test
    "bus-stale": "5",
    "bus-lingua": "5",
    "bus-poll": "7",
    "bus-stop": "R1",  # a GTFS route of the module's feed (tests/server/gtfs_feeds.py: SMALL)
    "bus-past": "R1",  # past Lima on its way to Porta Venezia
    "bus-far-line": "R2",  # R2 has no shape: a distance, no time
    "bus-red": "R1",  # the feed's R1 is red on white
    "bus-green": "N9",  # an operator's route, added by its test
}


@pytest.fixture(scope="module")
def rider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = make_settings(
        tmp_path_factory.mktemp("rider"), rate_limit_telemetry=RateLimit(10_000, 60)
    )
    running = RunningServer(settings).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def tokens(
    rider: RunningServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[int, str]]:
    """The small GTFS feed imported, and each bus of BUSES registered: name -> (id, token)."""
    feed = tmp_path_factory.mktemp("feed") / "feed.zip"
    feed.write_bytes(small_zip())

    async def register() -> dict[str, tuple[int, str]]:
        store = open_store(rider.settings.store.database_url, rider.settings.store.data_dir)
        await store.open()
        try:
            await import_feed(store, feed)
            made = {}
            for name, route in BUSES.items():
                token = new_device_token()
                device = await store.add_device(name, hash_device_token(token), route)
                made[name] = (device.id, token)
            return made
        finally:
            await store.close()

    return run_async(register)


def dispatcher(rider: RunningServer) -> dict[str, str]:
    """A signed-in operator's headers (a token needs its sign-in stored, docs/operations.md)."""
    return rider.operator("operator")


class Phone:
    """A browser context at phone size that records the bytes of every answer it gets."""

    def __init__(self, browser: Browser, **options: Any) -> None:
        self.context: BrowserContext = browser.new_context(
            viewport=PHONE, is_mobile=True, has_touch=True, **options
        )
        self.transferred: list[tuple[str, int]] = []
        self.context.on("requestfinished", self._count)
        self.context.route("https://tile.openstreetmap.org/**", lambda route: route.abort())
        self.page: Page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def _count(self, request: Any) -> None:
        sizes = request.sizes()
        self.transferred.append(
            (request.url, sizes["responseBodySize"] + sizes["responseHeadersSize"])
        )

    def open(self, url: str) -> Page:
        self.page.goto(url)
        self.ready()
        return self.page

    def ready(self) -> None:
        wait_in_page(self.page, "document.body.dataset.ready", timeout=WAIT_MS)


@pytest.fixture
def phone(browser: Browser) -> Iterator[Phone]:
    made = Phone(browser, locale="en-GB")
    try:
        yield made
        assert made.errors == [], made.errors
    finally:
        made.context.close()


def send(
    rider: RunningServer, token: tuple[int, str], lat: float, lon: float, age_s: float = 0
) -> None:
    post_fixes(rider.url, token[1], fix(lat, lon, age_s=age_s))


def bus_row(page: Page, label: str) -> Locator:
    return page.locator("li.bus", has_text=f", {label},")


def marker(page: Page, label: str) -> Locator:
    return page.locator(f'.bus-icon[aria-label*=", {label},"]')


def test_first_view_installs_stays_under_150_kB_and_starts_offline(
    rider: RunningServer, tokens: dict[str, tuple[int, str]], phone: Phone
) -> None:
    send(rider, tokens["bus-first"], 45.4651, 9.1909)
    page = phone.open(rider.url + "/")
    expect(bus_row(page, "bus-first")).to_be_visible(timeout=WAIT_MS)
    # Without tiles the map still holds the bus.
    expect(marker(page, "bus-first")).to_be_visible()
    # The service worker is installed, active, and controls the page (clients.claim).
    wait_in_page(page, "navigator.serviceWorker.controller !== null", timeout=WAIT_MS)
    assert page.evaluate("navigator.serviceWorker.ready.then(r => r.scope)") == rider.url + "/"
    manifest = page.evaluate(
        "fetch(document.querySelector('link[rel=manifest]').href).then(r => r.json())"
    )
    assert (manifest["name"], manifest["start_url"], manifest["display"]) == (
        "Buses live",
        "/",
        "standalone",
    )
    drawn = page.evaluate(
        """icons => Promise.all(icons.map(icon => new Promise((ok, bad) => {
            const img = new Image();
            img.onload = () => ok([icon.sizes, img.naturalWidth, img.naturalHeight]);
            img.onerror = bad; img.src = icon.src; })))""",
        manifest["icons"],
    )
    assert sorted(drawn) == [["192x192", 192, 192], ["512x512", 512, 512]]
    screenshot(page, "rider-first-view")
    # Everything the first view cost, the service worker's own downloads included.
    wait_in_page(page, "document.body.dataset.saved", timeout=WAIT_MS)
    total = sum(size for url, size in phone.transferred if "tile.openstreetmap" not in url)
    biggest = sorted(phone.transferred, key=lambda item: -item[1])[:5]
    assert total < FIRST_VIEW_LIMIT, biggest
    # Leaflet came from the server (the xstatic-leaflet package), not from a CDN.
    assert any(url == rider.url + "/vendor/leaflet/leaflet.js" for url, _ in phone.transferred)
    # Read-only and public: nothing but the app's files and riders' reads was asked for.
    asked = {url.removeprefix(rider.url).split("?")[0] for url, _ in phone.transferred}
    public = re.compile(
        r"^/($|rider/|vendor/leaflet/|sw\.js$|manifest\.webmanifest$|v1/live/public$|v1/routes|v1/stops/)"
    )
    assert {path for path in asked if path.startswith("/") and not public.match(path)} == set()

    phone.context.set_offline(True)
    try:
        page.reload()
        phone.ready()
        expect(page.locator("#status")).to_contain_text("Offline", timeout=WAIT_MS)
        row = bus_row(page, "bus-first")
        expect(row).to_contain_text(re.compile(r"updated \d+ s ago"), timeout=WAIT_MS)
        expect(row).to_have_class(STALE)
        expect(marker(page, "bus-first")).to_be_visible()
        screenshot(page, "rider-offline")
        # What the phone keeps names no device: the rider's view, under public ids.
        kept = page.evaluate(
            """caches.open('bustracker-rider-data')
            .then(c => c.match('/rider/last-view.json')).then(r => r.json())"""
        )
        mine = [bus for bus in kept["buses"] if bus["label"] == "bus-first"]
        assert len(mine) == 1 and set(mine[0]) <= {*PUBLIC_FIELDS, "localT"}
        assert mine[0]["id"].startswith("v") and tokens["bus-first"][1] not in str(kept)
    finally:
        phone.context.set_offline(False)


def test_buses_appear_move_and_the_route_filter_narrows_them(
    rider: RunningServer, tokens: dict[str, tuple[int, str]], phone: Phone
) -> None:
    page = phone.open(rider.url + "/")
    send(rider, tokens["bus-move"], 45.4651, 9.1909)
    icon = marker(page, "bus-move")
    expect(icon).to_be_visible(timeout=WAIT_MS)
    expect(icon).to_have_attribute("data-lat", "45.4651")
    before = icon.bounding_box()
    screenshot(page, "rider-bus-appears")
    send(rider, tokens["bus-move"], 45.4690, 9.1960)
    expect(icon).to_have_attribute("data-lat", "45.469", timeout=WAIT_MS)
    after = icon.bounding_box()
    assert before is not None and after is not None
    # It went north-east: up and to the right on the screen.
    assert after["y"] < before["y"] and after["x"] > before["x"]
    expect(bus_row(page, "bus-move")).to_contain_text(re.compile(r"updated \d+ s ago"))
    screenshot(page, "rider-bus-moved")

    # Route 11 and 12; bus-r12 is moved to route 12 by an operator while the rider watches.
    send(rider, tokens["bus-r11"], 45.4600, 9.1800)
    send(rider, tokens["bus-r12"], 45.4610, 9.1810)
    r = httpx.patch(
        f"{rider.url}/v1/devices/{tokens['bus-r12'][0]}",
        json={"route": "12"},
        headers=dispatcher(rider),
    )
    assert r.status_code == 200, r.text
    expect(bus_row(page, "bus-r12")).to_contain_text("Route 12", timeout=WAIT_MS)
    route = page.get_by_label("Route", exact=True)
    expect(route.locator("option[value='12']")).to_have_count(1)
    route.select_option("11")
    expect(bus_row(page, "bus-r12")).to_have_count(0, timeout=WAIT_MS)
    expect(marker(page, "bus-r12")).to_have_count(0)
    expect(bus_row(page, "bus-move")).to_have_count(0)
    expect(marker(page, "bus-r11")).to_be_visible()
    assert set(page.locator("li.bus .badge").all_inner_texts()) == {"11"}
    screenshot(page, "rider-route-filter")
    route.select_option("")
    expect(bus_row(page, "bus-r12")).to_be_visible(timeout=WAIT_MS)
    expect(bus_row(page, "bus-move")).to_be_visible()


def test_a_stale_bus_turns_grey_then_goes(
    rider: RunningServer, tokens: dict[str, tuple[int, str]], phone: Phone
) -> None:
    send(rider, tokens["bus-stale"], 45.4620, 9.1850, age_s=60)
    page = phone.open(rider.url + "/")
    row = bus_row(page, "bus-stale")
    expect(row).to_be_visible(timeout=WAIT_MS)
    expect(row).not_to_have_class(STALE)
    expect(marker(page, "bus-stale")).not_to_have_class(STALE)
    # The page's clock moves on 40 s: the fix is now over 90 s old.
    now_s = page.evaluate("Date.now()") / 1000
    page.clock.set_fixed_time(now_s + 40)
    expect(row).to_have_class(STALE, timeout=WAIT_MS)
    expect(marker(page, "bus-stale")).to_have_class(STALE)
    expect(row).to_contain_text("not updated recently")
    screenshot(page, "rider-stale-grey")
    # Past 3 minutes it is gone from the list and the map.
    page.clock.set_fixed_time(now_s + 130)
    expect(row).to_have_count(0, timeout=WAIT_MS)
    expect(marker(page, "bus-stale")).to_have_count(0)


def test_without_the_websocket_the_snapshot_keeps_the_buses_coming(
    rider: RunningServer, tokens: dict[str, tuple[int, str]], phone: Phone
) -> None:
    # A proxy that drops WebSockets: each one the page opens is closed at once.
    phone.page.route_web_socket(re.compile(r"/ws/public"), lambda ws: ws.close())
    send(rider, tokens["bus-poll"], 45.4660, 9.1950, age_s=20)
    page = phone.open(rider.url + "/")
    row = bus_row(page, "bus-poll")
    # From GET /v1/live/public, aged by the answer's Date: about 20 s, not 0.
    expect(row).to_contain_text(re.compile(r"updated ([2-5]\d|1\d\d) s ago"), timeout=WAIT_MS)
    expect(page.locator("#status")).to_contain_text("Connection lost")
    expect(marker(page, "bus-poll")).to_be_visible()
    polled = [url for url, _ in phone.transferred if url.endswith("/v1/live/public")]
    assert polled, "the page never asked for the snapshot"
    screenshot(page, "rider-no-websocket")


def test_an_italian_phone_gets_italian_and_english_on_request(
    rider: RunningServer, tokens: dict[str, tuple[int, str]], browser: Browser
) -> None:
    send(rider, tokens["bus-lingua"], 45.4630, 9.1870)
    italian = Phone(browser, locale="it-IT")
    try:
        page = italian.open(rider.url + "/")
        assert page.evaluate("document.documentElement.lang") == "it"
        expect(page.locator("h1")).to_have_text("Autobus in tempo reale")
        row = bus_row(page, "bus-lingua")
        expect(row).to_contain_text(re.compile(r"Linea 5, bus-lingua, aggiornato \d+ s fa"))
        screenshot(page, "rider-italian")
        page.get_by_label("Lingua", exact=True).select_option("en")
        expect(page.locator("h1")).to_have_text("Buses live")
        expect(row).to_contain_text(re.compile(r"Route 5, bus-lingua, updated \d+ s ago"))
        assert page.evaluate("document.documentElement.lang") == "en"
        # The rider's choice outlasts a reload, over the phone's language.
        page.reload()
        italian.ready()
        expect(page.locator("h1")).to_have_text("Buses live")

        # Keyboard: every control in reading order, each with a name a screen reader says.
        page.evaluate(
            """window.focusOrder = [];
            document.addEventListener('focusin',
              e => focusOrder.push(e.target.id || e.target.className))"""
        )
        tabbable = page.evaluate(
            """[...document.querySelectorAll('a[href], button, select, [tabindex]')]
            .filter(e => e.tabIndex >= 0 && !e.closest('[hidden]')).length"""
        )
        for _ in range(tabbable):
            page.keyboard.press("Tab")
        order: list[str] = page.evaluate("focusOrder")
        if "skip" in order[1:]:
            order = order[: order.index("skip", 1)]  # once round the page is enough
        first = {name: order.index(name) for name in ("lang", "route", "near")}
        shows = [i for i, name in enumerate(order) if name == "show"]
        markers = [i for i, name in enumerate(order) if "bus-icon" in name]
        assert order[0] == "skip" and first["lang"] < first["route"] < markers[0], order
        assert markers[-1] < shows[0] and shows[-1] < first["near"], order
        unnamed = page.evaluate(
            """[...document.querySelectorAll('a[href], button, select, [tabindex]')]
            .filter(e => !e.closest('[hidden]'))
            .filter(e => !(e.getAttribute('aria-label') || e.textContent.trim()
              || (e.id && document.querySelector(`label[for="${e.id}"]`)) || e.closest('label')))
            .map(e => e.outerHTML.slice(0, 80))"""
        )
        assert unnamed == []
        page.locator("a.skip").focus()
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "buses-title"
        screenshot(page, "rider-keyboard")
        assert italian.errors == []
    finally:
        italian.context.close()


def test_nearest_stops_a_stop_page_and_a_routes_shape(
    rider: RunningServer, tokens: dict[str, tuple[int, str]], browser: Browser
) -> None:
    # The rider stands by Lima (S2); bus-stop drives route R1 towards it, bus-past has
    # passed it, driving on south-west.
    send(rider, tokens["bus-stop"], 45.4830, 9.2135)
    post_fixes(rider.url, tokens["bus-past"][1], fix(45.47725, 9.2080, speed=7.0, heading=215.0))
    send(rider, tokens["bus-far-line"], 45.4802, 9.2112)
    near_lima = Phone(
        browser,
        locale="en-GB",
        permissions=["geolocation"],
        geolocation={"latitude": 45.4801, "longitude": 9.2111},
    )
    try:
        page = near_lima.open(rider.url + "/")
        page.get_by_role("button", name="Find stops near me").click()
        stops = page.locator("#stops li")
        expect(stops.first).to_contain_text(re.compile(r"Lima · \d+ m away"), timeout=WAIT_MS)
        assert stops.all_inner_texts()[1].startswith("Loreto")
        page.get_by_role("link", name="Lima").click()
        expect(page.locator("#stop-name")).to_have_text("Lima", timeout=WAIT_MS)
        expect(page.locator("#stop-name")).to_be_focused()
        # bus-past has passed Lima: only bus-stop is coming, with when it is due.
        coming = page.locator("#arrivals li")
        expect(coming).to_have_count(1, timeout=WAIT_MS)
        expect(coming.first.locator(".eta")).to_have_text(re.compile(r"^(Due|\d+ min)$"))
        expect(coming.first.locator(".what")).to_have_text(
            re.compile(r"^Route 1 · Loreto - Porta Venezia · bus-stop · \d+ m away · updated")
        )
        expect(page.locator("#live-view")).to_be_hidden()
        screenshot(page, "rider-stop-page")
        # Porta Venezia: both R1 buses coming, soonest first; R2's bus (its route has no
        # shape) last, as a straight-line distance without a time.
        page.evaluate("location.hash = '#stop/S3'")
        expect(page.locator("#stop-name")).to_have_text("Porta Venezia", timeout=WAIT_MS)
        expect(coming).to_have_count(3, timeout=WAIT_MS)
        whats = coming.locator(".what")
        expect(whats.nth(0)).to_contain_text("· bus-past ·")
        expect(whats.nth(1)).to_contain_text("· bus-stop ·")
        expect(whats.nth(2)).to_contain_text(
            re.compile(r"· bus-far-line · \d+ m away in a straight line")
        )
        expect(coming.locator(".eta")).to_have_count(2)
        etas = coming.locator(".eta").all_inner_texts()
        assert all(re.fullmatch(r"Due|\d+ min", e) for e in etas), etas
        screenshot(page, "rider-stop-arrivals")
        page.get_by_role("link", name="Back to the map").click()
        expect(page.locator("#live-view")).to_be_visible()

        # The route's shape and its stops on the map, and the stops as links.
        page.get_by_label("Route", exact=True).select_option("R1")
        expect(page.locator("path.leaflet-interactive")).to_have_count(4, timeout=WAIT_MS)
        expect(page.locator("#route-stops a")).to_have_text(["Loreto", "Lima", "Porta Venezia"])
        expect(marker(page, "bus-stop")).to_be_visible()
        screenshot(page, "rider-route-shape")
        assert near_lima.errors == []
    finally:
        near_lima.context.close()


def test_route_badges_wear_the_routes_colours_only_where_they_read(
    rider: RunningServer, tokens: dict[str, tuple[int, str]], phone: Phone
) -> None:
    made = httpx.post(
        f"{rider.url}/v1/routes",
        json={"route_id": "N9", "short_name": "N9", "color": "0B6E4F", "text_color": "FFFFFF"},
        headers=dispatcher(rider),
    )
    assert made.status_code == 201, made.text
    # The feed's own pair for R1 (FF0000 on FFFFFF) is 4.0:1, under WCAG AA's 4.5:1, so
    # its badges keep the app's palette; the operator's green on white passes.
    assert contrast("#FF0000", "#FFFFFF") < 4.5 <= contrast("#0B6E4F", "#FFFFFF")
    send(rider, tokens["bus-green"], 45.4640, 9.1880)
    send(rider, tokens["bus-red"], 45.4645, 9.1885)
    page = phone.open(rider.url + "/")
    green = bus_row(page, "bus-green").locator(".badge")
    expect(green).to_have_text("N9", timeout=WAIT_MS)
    expect(green).to_have_css("background-color", "rgb(11, 110, 79)")
    expect(green).to_have_css("color", "rgb(255, 255, 255)")
    expect(marker(page, "bus-green").locator("span")).to_have_css(
        "background-color", "rgb(11, 110, 79)"
    )
    red = bus_row(page, "bus-red").locator(".badge")
    expect(red).to_have_text("1")
    expect(red).to_have_css("background-color", "rgb(11, 79, 148)")  # --brand, the default
    expect(marker(page, "bus-red").locator("span")).to_have_css(
        "background-color", "rgb(11, 79, 148)"
    )
    screenshot(page, "rider-route-colours")
