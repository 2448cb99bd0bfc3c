"""The browser harness itself: Debian's Chromium starts headless, offline, and reports what a
page transferred (the figure the web weight benchmark prints)."""

from __future__ import annotations

import gzip
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from farmwatch_local.browser import DESKTOP, PHONE, chromium, set_viewport, transfer_sizes

BODY = ("<!doctype html><title>t</title><p id=x>" + "agua " * 2000 + "</p>").encode()


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        payload = gzip.compress(BODY)
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def page_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_chromium_loads_a_page_and_reports_compressed_transfer(
    page_url: str, tmp_path: Path
) -> None:
    with chromium(PHONE) as driver:
        driver.get(page_url)
        assert driver.find_element("id", "x").text.startswith("agua")
        entries = transfer_sizes(driver)
        navigation = next(e for e in entries if e["type"] == "navigation")
        # on the wire: the gzip body plus headers, far below the 10 kB decoded page
        assert navigation["decoded"] == len(BODY)
        assert len(gzip.compress(BODY)) <= navigation["transfer"] < len(BODY) // 4
        set_viewport(driver, DESKTOP)
        assert driver.execute_script("return window.innerWidth") == DESKTOP[0]
        shot = tmp_path / "page.png"
        assert driver.save_screenshot(str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
