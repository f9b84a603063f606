"""The system's Chromium driven by playwright (which downloads no browser of its own here).

``python -m tests.report.browser REPORT PNG [IMAGE_IDX]`` saves the screenshot the README shows:
an image page of REPORT with a word's overlay chosen.
"""

from __future__ import annotations

import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser")


def chromium_path() -> str | None:
    return next((path for path in map(shutil.which, CHROMIUM_NAMES) if path), None)


@contextmanager
def browser_page(width: int = 1280, height: int = 900):
    """A page of a headless Chromium, and what it reported: console errors, failed and non-file requests."""
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox will not start
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"failed request: {r.url}"))
            page.on("request", lambda r: None if r.url.startswith("file://") else problems.append(f"network: {r.url}"))
            yield page, problems
        finally:
            browser.close()


def screenshot(report: Path, target: Path, idx: int = 3, word: int = 1) -> None:
    with browser_page(1100, 600) as (page, problems):
        page.goto((report / "images" / f"{idx}.html").resolve().as_uri())
        page.locator(".words button").nth(word).click()
        page.wait_for_function("document.getElementById('overlay').complete")
        page.screenshot(path=str(target), type="png")
        assert not problems, problems


if __name__ == "__main__":
    screenshot(Path(sys.argv[1]), Path(sys.argv[2]), *(int(a) for a in sys.argv[3:]))
