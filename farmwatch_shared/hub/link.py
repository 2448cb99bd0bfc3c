"""One NATS connection on its own event-loop thread, for the threaded services.

nats-py is asyncio; farmwatch's services are threads. ``NatsLink`` runs an event loop on a
thread of its own, connects (retrying with backoff until it succeeds: nats-py gives up on a
first connection that fails) and lets nats-py reconnect across every node of the cluster after
that. Other threads hand it coroutines (``submit``) and get ``concurrent.futures.Future`` objects.

The server's asynchronous errors matter: a publish the user's permissions forbid is not
answered (the JetStream publish times out) but reported as ``-ERR 'Permissions Violation for
Publish to "<subject>"'``; ``on_refused`` receives that subject, so the caller sees a refusal
as a refusal, not as a slow hub.

Nobody outside ``farmwatch_shared.hub`` touches nats-py's client.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import re
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import nats
import nats.errors
from nats.aio.client import Client

from farmwatch_shared.backoff import Backoff
from farmwatch_shared.hub.endpoint import NatsEndpoint

__all__ = ["NatsEndpoint", "NatsLink", "RefusedHandler"]

log = logging.getLogger(__name__)
_T = TypeVar("_T")
_REFUSED = re.compile(r'permissions violation for publish to "([^"]+)"', re.IGNORECASE)
RefusedHandler = Callable[[str], None]
"""Called on the link's thread with the subject of a publish the server refused, lower-cased
(nats-py lower-cases the server's error line: compare with ``str.lower()``)."""


class NatsLink:
    """Owns the event loop thread and the nats-py client."""

    def __init__(
        self,
        endpoint: NatsEndpoint,
        *,
        on_refused: RefusedHandler | None = None,
        on_connected: Callable[[], None] | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._tls = endpoint.tls_context()
        self._on_refused = on_refused
        self._on_connected = on_connected
        self._backoff = backoff or Backoff(initial_s=0.5, max_s=15.0)
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._client: Client | None = None
        self._connected = threading.Event()
        self._stopping = threading.Event()
        self.refusals = 0
        """Publishes the server refused (permissions), since the start."""

    # -- for other threads --------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """Connected to a node now."""
        return self._connected.is_set()

    @property
    def tls_resumed(self) -> bool:
        """Whether the current connection resumed an earlier TLS session (tls_resume)."""
        return self._tls is not None and self._tls.resumed()

    def wait_connected(self, timeout_s: float) -> bool:
        """Wait until connected; False after ``timeout_s``."""
        return self._connected.wait(timeout_s)

    def start(self) -> None:
        """Start the loop thread; it connects in the background."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run, name=f"nats-{self.endpoint.name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Flush, close the connection and end the thread."""
        if self._thread is None:
            return
        self._stopping.set()
        future = asyncio.run_coroutine_threadsafe(self._close(), self._loop)
        try:
            future.result(timeout_s)
        except (concurrent.futures.TimeoutError, nats.errors.Error, OSError) as exc:
            log.warning("Cierre de NATS / NATS close: %s", exc)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout_s)
        self._thread = None

    def submit(self, coroutine: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T]:
        """Run ``coroutine`` on the loop; its future (any thread may wait on it)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def call_soon(self, callback: Callable[[], object]) -> None:
        """Run a plain callback on the loop thread."""
        self._loop.call_soon_threadsafe(callback)

    # -- on the loop thread -------------------------------------------------------------------
    @property
    def client(self) -> Client:
        """The connected client (use on the loop thread, after ``wait_connected``)."""
        if self._client is None:
            raise nats.errors.ConnectionClosedError
        return self._client

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.create_task(self._connect())
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    async def _connect(self) -> None:
        endpoint = self.endpoint
        while not self._stopping.is_set():
            try:
                self._client = await nats.connect(
                    servers=list(endpoint.servers),
                    name=endpoint.name,
                    user=endpoint.user,
                    password=(endpoint.password.get_secret_value() if endpoint.password else None),
                    tls=self._tls,
                    inbox_prefix=endpoint.inbox_prefix,
                    connect_timeout=endpoint.connect_timeout_s,
                    reconnect_time_wait=endpoint.reconnect_wait_s,
                    max_reconnect_attempts=-1,
                    allow_reconnect=True,
                    ping_interval=endpoint.ping_interval_s,
                    max_outstanding_pings=3,
                    error_cb=self._error,
                    disconnected_cb=self._disconnected,
                    reconnected_cb=self._reconnected,
                    closed_cb=self._closed,
                )
            except (TimeoutError, nats.errors.Error, OSError) as exc:
                delay = self._backoff.next_delay()
                log.warning(
                    "Sin conexión a NATS / cannot reach NATS (%s): %s; retrying in %.1f s",
                    ", ".join(endpoint.servers),
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            self._backoff.reset()
            await self._reconnected()
            return

    async def _close(self) -> None:
        client = self._client
        if client is not None and not client.is_closed:
            try:
                await client.drain()
            except (TimeoutError, nats.errors.Error, OSError):
                await client.close()
        self._connected.clear()

    async def _error(self, exc: Exception) -> None:
        match = _REFUSED.search(str(exc))
        if match is not None:
            self.refusals += 1
            if self._on_refused is not None:
                self._on_refused(match.group(1))
            return
        if not self._stopping.is_set():
            log.warning("NATS: %s", exc)

    async def _disconnected(self) -> None:
        self._connected.clear()
        if not self._stopping.is_set():
            log.warning("Desconectado de NATS / disconnected from NATS: reconnecting")

    async def _reconnected(self) -> None:
        client = self._client
        url = client.connected_url if client is not None else None
        if self._tls is not None:  # the PONG was read: a TLS 1.3 ticket came before it
            self._tls.remember()
        log.info(
            "Conectado a NATS / connected to NATS: %s",
            url.netloc if url is not None else "?",
        )
        self._connected.set()
        if self._on_connected is not None:
            self._on_connected()

    async def _closed(self) -> None:
        self._connected.clear()
