"""The rider app's files as a browser gets them, its strings, its colours and its settings.

The app itself, in a real browser, is ``tests/e2e/test_rider.py``.
"""

from __future__ import annotations

import gzip
import json
import re
import struct
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server.rider import files
from server.settings import SettingsError, load_settings
from tests.server.running import RunningServer, make_settings

RIDER = Path(files.__file__).resolve().parent


@pytest.fixture(scope="module")
def rider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = RunningServer(make_settings(tmp_path_factory.mktemp("rider"))).start()
    try:
        yield running
    finally:
        running.stop()


def test_every_file_the_worker_keeps_is_served_gzipped_and_revalidates(
    rider: RunningServer,
) -> None:
    worker = httpx.get(rider.url + "/sw.js")
    assert worker.status_code == 200
    shell = json.loads(re.search(r"const SHELL = (\[.*?\]);", worker.text).group(1))  # type: ignore[union-attr]
    assert {"/", "/rider/app.js", "/manifest.webmanifest", "/vendor/leaflet/leaflet.js"} <= set(
        shell
    )
    with httpx.Client(base_url=rider.url) as client:
        for path in shell:
            r = client.get(path, headers={"Accept-Encoding": "gzip"})
            assert r.status_code == 200, path
            etag = r.headers["etag"]
            if not path.endswith(".png"):
                assert r.headers["content-encoding"] == "gzip", path
            again = client.get(path, headers={"If-None-Match": etag})
            assert again.status_code == 304 and again.content == b"", path
            # Without gzip in Accept-Encoding, the plain bytes.
            plain = client.get(path, headers={"Accept-Encoding": "identity"})
            assert "content-encoding" not in plain.headers and plain.content == r.content


def test_the_worker_and_manifest_are_never_kept_stale(rider: RunningServer) -> None:
    for path in ("/sw.js", "/manifest.webmanifest", "/", "/rider/app.js"):
        r = httpx.get(rider.url + path)
        assert r.headers["cache-control"] == "no-cache", path
    manifest = httpx.get(rider.url + "/manifest.webmanifest")
    assert manifest.headers["content-type"].startswith("application/manifest+json")
    body = manifest.json()
    assert (body["start_url"], body["display"]) == ("/", "standalone")
    assert {icon["sizes"] for icon in body["icons"]} == {"192x192", "512x512"}


def test_the_icons_are_pngs_of_the_sizes_the_manifest_says(rider: RunningServer) -> None:
    for icon in httpx.get(rider.url + "/manifest.webmanifest").json()["icons"]:
        png = httpx.get(rider.url + icon["src"]).content
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        width, height = struct.unpack(">II", png[16:24])
        assert f"{width}x{height}" == icon["sizes"]


def test_a_file_that_is_not_the_apps_is_a_404_with_a_reason(rider: RunningServer) -> None:
    for path in ("/rider/../settings.py", "/rider/nope.js", "/rider/sw.js"):
        r = httpx.get(rider.url + path)
        assert r.status_code == 404, path
        assert "error" in r.json()


def test_a_changed_app_gets_a_new_worker_version() -> None:
    one = files.rider_assets("https://a/{z}/{x}/{y}.png", "A")["/sw.js"]
    two = files.rider_assets("https://b/{z}/{x}/{y}.png", "A")["/sw.js"]
    version = re.compile(rb'const VERSION = "([0-9a-f]+)"')
    assert version.search(one.body) and version.search(two.body)
    assert version.search(one.body).group(1) != version.search(two.body).group(1)  # type: ignore[union-attr]
    assert gzip.decompress(one.gzipped or b"") == one.body


# -- strings ---------------------------------------------------------------------------------


def _strings(lang: str) -> dict[str, str]:
    strings: dict[str, str] = json.loads((RIDER / "i18n" / f"{lang}.json").read_text())
    return strings


def test_english_and_italian_have_every_string_the_app_uses() -> None:
    en, it = _strings("en"), _strings("it")
    assert set(en) == set(it)
    page = (RIDER / "index.html").read_text()
    used = set(re.findall(r'data-i18n(?:-aria)?="(\w+)"', page))
    for script in RIDER.glob("*.js"):
        used |= set(re.findall(r'\bt\("(\w+)"', script.read_text()))
        used |= set(re.findall(r'"(status_\w+)"', script.read_text()))
    assert used and used <= set(en), sorted(used - set(en))
    # The same placeholders in both, so no translation drops a number or a name.
    for key in en:
        assert set(re.findall(r"\{\w+\}", en[key])) == set(re.findall(r"\{\w+\}", it[key])), key
    # Italian is translated, not copied (a few words may agree: "Offline").
    assert sum(en[k] == it[k] for k in en) <= 3


# -- colours (WCAG 2.1 AA) -------------------------------------------------------------------


def _luminance(hex_colour: str) -> float:
    rgb = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: str, b: str) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_contrast_follows_the_wcag_definition() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)  # a known near miss


# (text, background, least ratio): body text 4.5:1; the focus ring against the page 3:1.
PAIRS = [
    ("--fg", "--bg", 4.5),
    ("--muted", "--bg", 4.5),
    ("--brand", "--bg", 4.5),  # links
    ("--on-brand", "--brand", 4.5),  # header, live bus markers, route badges
    ("--on-stale", "--stale", 4.5),  # grey markers and badges
    ("--warn-fg", "--warn-bg", 4.5),  # the offline notice
    ("--fg", "--map-bg", 4.5),  # text over the map without tiles
    ("--focus", "--bg", 3.0),
    ("--focus", "--map-bg", 3.0),
]


def test_every_colour_pair_of_the_palette_meets_wcag_aa() -> None:
    css = (RIDER / "style.css").read_text()
    palette = dict(re.findall(r"(--[\w-]+):\s*(#[0-9a-fA-F]{6})\s*;", css))
    low = {
        (fg, bg): round(contrast(palette[fg], palette[bg]), 2)
        for fg, bg, least in PAIRS
        if contrast(palette[fg], palette[bg]) < least
    }
    assert low == {}
    # The stylesheet uses no colour outside the palette for text on a background.
    rules = re.sub(r":root\s*{[^}]*}", "", css)
    assert re.findall(r"(?<![\w-])color:\s*#", rules) == []


# -- settings --------------------------------------------------------------------------------


def test_map_tile_url_defaults_to_openstreetmap_and_may_be_empty() -> None:
    assert load_settings({}).http.map_tile_url == "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    assert load_settings({"MAP_TILE_URL": ""}).http.map_tile_url == ""
    mine = "https://tiles.example.org/{z}/{x}/{y}@2x.png"
    assert load_settings({"MAP_TILE_URL": mine}).http.map_tile_url == mine


def test_a_bad_map_tile_url_stops_start_up_naming_it() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"MAP_TILE_URL": "ftp://tiles/{z}/{x}/{y}", "LOG_LEVEL": "loud"})
    problems = caught.value.problems
    assert any(p.startswith("MAP_TILE_URL: expected an http(s) URL") for p in problems)
    assert any(p.startswith("LOG_LEVEL") for p in problems)
    with pytest.raises(SettingsError, match="MAP_TILE_URL"):
        load_settings({"MAP_TILE_URL": "https://tiles.example.org/{z}/{x}.png"})


def test_every_file_in_the_apps_folder_is_served_and_kept_offline() -> None:
    """A module added to the folder but not to FILES would break the app offline."""
    on_disk = {
        str(p.relative_to(RIDER))
        for p in RIDER.rglob("*")
        if p.suffix in (".js", ".css", ".json") and p.name != "sw.js"
    }
    assert on_disk == set(files.FILES)
    shell = files.rider_assets("", "")
    assert {f"/rider/{name}" for name in on_disk} <= set(shell)
