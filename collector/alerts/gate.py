"""Who may send: exactly one alerting process evaluates and texts for a set of farms at a time.

``SenderGate`` is what the service asks: ``acquire`` (wait until this process may send, then
start its consumer), ``renew`` (at every tick: still allowed?) and ``release`` (at a clean stop,
so a standby takes over at once). ``StoreLease`` is the single-server way: a lease row in the
state database that processes sharing it take in turn (the consumer then starts: the standby
takes over the same MQTT session). On the hub the gate is the pinned consumer itself
(``collector.alerts.jetstream.PinnedGate``).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from collector.alerts.store import AlertStore
from farmwatch_shared.clock import Clock

log = logging.getLogger(__name__)
LEASE_NAME = "sender"


class SenderGate(Protocol):
    """Whether this process is the one that sends."""

    def acquire(self, store: AlertStore, stop: threading.Event, start: Callable[[], None]) -> bool:
        """Wait until this process may send; ``start`` its consumer (before or after, as the
        gate needs); False when ``stop`` was set first."""
        ...

    def renew(self, store: AlertStore) -> bool:
        """Whether this process still may send (called at every tick)."""
        ...

    def release(self) -> None:
        """Give the turn up (clean stop, after the modem was closed)."""
        ...


class StoreLease:
    """The lease in the state database that processes sharing it take in turn."""

    def __init__(self, state_db: Path, clock: Clock, holder: str, ttl_s: float) -> None:
        self._state_db = state_db
        self._clock = clock
        self._holder = holder
        self._ttl_ms = int(ttl_s * 1000)

    def acquire(self, store: AlertStore, stop: threading.Event, start: Callable[[], None]) -> bool:
        """Take the lease (waiting while another holds it), then start the consumer."""
        while not stop.is_set():
            if store.try_lease(LEASE_NAME, self._holder, self._clock.now_ms(), self._ttl_ms):
                start()
                return True
            stop.wait(min(self._ttl_ms / 4000, 2.0))
        return False

    def renew(self, store: AlertStore) -> bool:
        """Renew the lease; False if another process took it."""
        return store.try_lease(LEASE_NAME, self._holder, self._clock.now_ms(), self._ttl_ms)

    def release(self) -> None:
        """Delete the lease row so a standby takes over at once."""
        try:
            store = AlertStore(self._state_db, self._clock)
            try:
                store.release_lease(LEASE_NAME, self._holder)
            finally:
                store.close()
        except sqlite3.Error as exc:  # the lease then expires after its TTL
            log.error(  # noqa: TRY400 - an expected outcome at stop, not a bug: no traceback
                "No pude soltar el turno / could not release the lease: %s", exc
            )
