"""HTTP caching and headers of the page: weak ETags of the rendered body, Last-Modified,
conditional GETs answered with 304, and the security headers every response carries."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

from starlette.datastructures import MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SECURITY_HEADERS = {
    # no script at all; styles from our own file; images inline (SVG) or data: (the icon)
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
PAGE_CACHE = "private, no-cache"
"""The browser keeps a page but asks every time (and gets a 304 when nothing changed)."""
STATIC_CACHE = "public, max-age=31536000, immutable"
"""The stylesheet's URL names its content: it never changes under that URL."""


def weak_etag(body: bytes) -> str:
    """``W/"…"`` of the body: weak, since gzip changes the bytes and not the meaning."""
    digest = hashlib.sha256(body).digest()[:12]
    return 'W/"' + base64.urlsafe_b64encode(digest).decode() + '"'


def http_date(ms: int) -> str:
    """An HTTP date (second resolution)."""
    return format_datetime(datetime.fromtimestamp(ms // 1000, UTC), usegmt=True)


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def not_modified(
    request_headers: Mapping[str, str], etag: str, last_modified_ms: int | None
) -> bool:
    """Whether a GET with these headers may be answered 304 (RFC 9110 §13.2.2: If-None-Match
    decides when present, by weak comparison; otherwise If-Modified-Since)."""
    match = request_headers.get("if-none-match")
    if match is not None:
        return match.strip() == "*" or etag.removeprefix("W/") in _etags(match)
    since = request_headers.get("if-modified-since")
    if since is None or last_modified_ms is None:
        return False
    try:
        when = parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False
    if when.tzinfo is None:
        return False
    return last_modified_ms // 1000 <= int(when.timestamp())


def cached_response(
    request_headers: Mapping[str, str],
    body: bytes,
    *,
    media_type: str,
    status: int = 200,
    last_modified_ms: int | None = None,
    cache_control: str = PAGE_CACHE,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The response for ``body``, or a 304 when the client's copy is current (only for 200s)."""
    etag = weak_etag(body)
    common = {"ETag": etag, "Cache-Control": cache_control, "Vary": "Cookie"}
    if last_modified_ms is not None:
        common["Last-Modified"] = http_date(last_modified_ms)
    common.update(headers or {})
    if status == 200 and not_modified(request_headers, etag, last_modified_ms):
        return Response(status_code=304, headers=common)
    return Response(body, status_code=status, media_type=media_type, headers=common)


class SecurityHeaders:
    """ASGI middleware adding ``SECURITY_HEADERS`` to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the headers to the response's start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class ServerTiming:
    """ASGI middleware adding ``Server-Timing: app;dur=<ms>`` (request in → response headers
    out, as the browser's developer tools and the benchmark show it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; stamp the response's start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def send_with_timing(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed_ms = (time.perf_counter() - started) * 1000
                MutableHeaders(scope=message).append("Server-Timing", f"app;dur={elapsed_ms:.1f}")
            await send(message)

        await self.app(scope, receive, send_with_timing)
