"""Headless Chromium for the console's browser tests: Debian's ``chromium`` driven by its ``chromedriver``.

Nothing is downloaded: Selenium is pointed at both binaries. The flags are those a closed, shared machine
needs (no sandbox as root, no GPU, no network chatter) and every browser gets a fresh, empty profile.
When either binary is missing the tests skip with the reason, unless ``KEP_REQUIRE_SERVICES=1`` (CI), where
they fail: ``scripts/install-tools.sh`` (``make tools``) installs both.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = os.environ.get("KEP_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("KEP_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)

#: Where screenshots go: ``KEP_CONSOLE_SCREENSHOTS=docs/img`` refreshes the documentation's.
SCREENSHOTS = os.environ.get("KEP_CONSOLE_SCREENSHOTS")


def require_browser() -> None:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if shutil.which(path) is None]
    if not missing:
        return
    reason = f"{' and '.join(missing)} not installed (scripts/install-tools.sh installs Debian's chromium)"
    if os.environ.get("KEP_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (KEP_REQUIRE_SERVICES=1: browser tests must not skip here)")
    pytest.skip(reason)


@contextmanager
def chromium(profile: Path, *, width: int = 1280, height: int = 900) -> Iterator[WebDriver]:
    """A headless Chromium (a Selenium ``WebDriver``) with an empty profile in ``profile``."""
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile.mkdir(parents=True, exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    driver: WebDriver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: WebDriver, name: str, fallback: Path) -> Path:
    """Save a PNG of the whole page as ``name`` in ``$KEP_CONSOLE_SCREENSHOTS`` (else in ``fallback``)."""
    folder = Path(SCREENSHOTS) if SCREENSHOTS else fallback
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    body = driver.find_element("tag name", "body")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.get_window_size()["width"]
    driver.set_window_size(width, max(600, min(int(height) + 120, 2400)))
    body.screenshot(str(path))
    return path
