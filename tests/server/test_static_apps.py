"""The console's, the wallboard's and the share page's files: as they are on disk, to anyone."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from server import console, monitor, share
from tests.server.running import RunningServer

APPS = [("/console", Path(console.__file__)), ("/monitor", Path(monitor.__file__))]


@pytest.mark.parametrize(("path", "module"), APPS, ids=["console", "monitor"])
def test_an_apps_address_is_its_page_and_every_file_is_revalidated(
    server: RunningServer, path: str, module: Path
) -> None:
    static = module.parent / "static"
    with httpx.Client(base_url=server.url) as client:
        page = client.get(f"{path}/")  # no sign-in: the page signs in itself
        assert page.status_code == 200
        assert page.text == (static / "index.html").read_text()
        for file in sorted(static.iterdir()):
            r = client.get(f"{path}/{file.name}")
            assert r.status_code == 200, file.name
            assert r.content == file.read_bytes(), file.name
            # Changed by upgrades: a browser must not run a stale copy.
            assert r.headers["cache-control"] == "no-cache", file.name
        assert client.get(f"{path}/no-such-file.js").status_code == 404


def test_the_share_pages_assets_are_files_only(server: RunningServer) -> None:
    static = Path(share.__file__).parent / "static"
    with httpx.Client(base_url=server.url) as client:
        for name in ("share.js", "share.css"):
            r = client.get(f"/share-assets/{name}")
            assert r.status_code == 200 and r.content == (static / name).read_bytes(), name
            assert r.headers["cache-control"] == "no-cache", name
        # The page lives at /share/<token> alone; its folder is no second address of it.
        assert client.get("/share-assets/").status_code == 404
