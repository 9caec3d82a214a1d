"""A real browser for page tests: Debian's chromium driven by Playwright.

Screenshots go to ``test-output/screenshots/`` at the checkout's root (ignored
by git), one per page state a test checks, so a person can look at what the
test saw. Missing chromium skips locally and fails under CI=true.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.service_procs import _missing

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-output" / "screenshots"


# Per module: Playwright's sync API runs an event loop of its own, which must be
# gone before the next module's async tests run theirs.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        _missing("chromium", "chromium")
    with sync_playwright() as pw:
        # --no-sandbox: CI runs as root, where chromium's sandbox refuses to start.
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1024, "height": 700})
    try:
        yield context.new_page()
    finally:
        context.close()


def screenshot(page: Page, name: str) -> Path:
    """Save what the page shows now as ``test-output/screenshots/NAME.png``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def wait_for_js(page: Page, expression: str, timeout: float = 30_000) -> Any:
    """Poll ``expression`` in the page until it is truthy; return its value.

    Playwright's ``wait_for_function`` compiles its predicate inside the page,
    which the server's CSP (no ``unsafe-eval``, server/headers.py) rightly
    refuses; ``evaluate`` goes through the DevTools protocol instead, so the
    pages are tested under the very CSP riders and operators get.
    """
    deadline = time.monotonic() + timeout / 1000
    while True:
        value = page.evaluate(expression)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still falsy after {timeout / 1000:.0f} s: {expression}")
        page.wait_for_timeout(50)
