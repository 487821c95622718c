"""Real-browser tests: Playwright driving Debian's chromium (headless, background networking off).

On a failure the page's screenshot is saved under ``test-artifacts/`` (CI keeps that folder).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = os.environ.get("WULEWULE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# Chromium's own connections (updates, sync, safe browsing) are refused by a closed network, many at
# a time; switch them off so the tests see only the app.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


def chromium_available() -> bool:
    return Path(CHROMIUM).is_file()


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator[Any]:
    if not chromium_available():
        pytest.fail(f"chromium not found at {CHROMIUM}: sudo apt install chromium (or set WULEWULE_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


def launch_browser(playwright: Any, extra_args: list[str] = ()) -> Any:  # type: ignore[assignment]
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, *extra_args])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        pages = ("page", "mic_page", "hands_free_page", "barge_in_page")
        page = next((item.funcargs[name] for name in pages if item.funcargs.get(name) is not None), None)
        if page is not None:
            ARTIFACTS.mkdir(exist_ok=True)
            with contextlib.suppress(Exception):  # a failed screenshot must not hide the test's failure
                page.screenshot(path=str(ARTIFACTS / f"{item.name}.png"), full_page=True)
