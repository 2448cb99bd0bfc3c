"""A real headless Chromium for the tests, the benchmarks and the demo check.

Debian's ``chromium`` driven through its ``chromium-driver`` (both installed by
``scripts/install-system-deps.sh --tests``), with Selenium pointed at that driver so that
Selenium Manager never downloads a browser or a driver at run time (this machine's network is
closed; a farm's server may be too). Chromium's own background traffic (component updates,
sync, the first-run pages) is switched off: offline it only produces refused connections.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

CHROMIUM_BINARIES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMEDRIVER_BINARIES = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
PHONE = (360, 740)
"""A common small Android phone, CSS pixels."""
DESKTOP = (1280, 800)


class BrowserMissingError(RuntimeError):
    """Chromium or its driver is not installed."""


def _first_existing(candidates: tuple[str, ...], what: str) -> str:
    for candidate in candidates:
        if Path(candidate).exists():
            return candidate
    raise BrowserMissingError(
        f"{what} no instalado / not installed ({', '.join(candidates)}): "
        "sh scripts/install-system-deps.sh --tests"
    )


def chromium_options(profile: Path, window: tuple[int, int]) -> Options:
    """Headless Chromium with a fresh profile, no background networking, at ``window`` size."""
    options = Options()
    options.binary_location = _first_existing(CHROMIUM_BINARIES, "chromium")
    for flag in (
        "--headless=new",
        "--no-sandbox",  # the tests may run as root (CI containers)
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        f"--window-size={window[0]},{window[1]}",
        "--force-device-scale-factor=1",
        "--hide-scrollbars",
    ):
        options.add_argument(flag)
    return options


@contextmanager
def chromium(
    window: tuple[int, int] = PHONE, log_path: Path | None = None
) -> Iterator[webdriver.Chrome]:
    """A running headless Chromium (closed and its profile deleted on exit)."""
    driver_path = _first_existing(CHROMEDRIVER_BINARIES, "chromium-driver")
    profile = Path(tempfile.mkdtemp(prefix="farmwatch-chromium-"))
    service = Service(executable_path=driver_path, log_output=str(log_path) if log_path else None)
    driver = webdriver.Chrome(options=chromium_options(profile, window), service=service)
    try:
        driver.set_page_load_timeout(60)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def set_viewport(driver: webdriver.Chrome, window: tuple[int, int]) -> None:
    """Resize the page's viewport itself (not the outer window) to ``window`` CSS pixels."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": window[0], "height": window[1], "deviceScaleFactor": 1, "mobile": False},
    )


def transfer_sizes(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    """What the page loaded, from the browser's own ``performance.getEntries()``: name, type,
    bytes on the wire (``transferSize``: headers + compressed body; 0 when served from the
    cache without asking) and decoded body size."""
    entries: list[dict[str, Any]] = driver.execute_script(
        "return performance.getEntries()"
        ".filter(e => e.entryType === 'navigation' || e.entryType === 'resource')"
        ".map(e => ({name: e.name, type: e.entryType, initiator: e.initiatorType || '',"
        " transfer: e.transferSize, encoded: e.encodedBodySize, decoded: e.decodedBodySize}))"
    )
    return entries
