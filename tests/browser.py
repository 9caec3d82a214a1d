"""A real browser for page tests: Debian's chromium driven by Playwright.

Screenshots go to ``test-output/screenshots/`` at the checkout's root (ignored
by git), one per page state a test checks, so a person can look at what the
test saw. Missing chromium skips locally and fails under CI=true.
"""

from __future__ import annotations

import json
import shutil
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


def wait_in_page(page: Page, condition: str, timeout: float = 15_000) -> Any:
    """Until the JS expression ``condition`` is truthy in the page; its value (or fail
    after ``timeout`` ms).

    ``page.wait_for_function`` evaluates its string with ``eval`` in the page, which
    our pages' CSP (script-src 'self', no 'unsafe-eval'; server/headers.py) refuses;
    a function given to ``evaluate`` is compiled by the browser's debugger, outside it.
    """
    return page.evaluate(
        f"""async () => {{ const end = performance.now() + {timeout};
        for (;;) {{
          const value = ({condition});
          if (value) return value;
          if (performance.now() > end) throw new Error({json.dumps("timed out: " + condition)});
          await new Promise((r) => setTimeout(r, 15)); }} }}"""
    )
