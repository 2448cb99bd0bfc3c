"""No thread dies alone: a service's worker threads run under one ``Supervisor``.

A worker is ``target(stop)``: it runs until ``stop`` is set. If it raises, or returns while
``stop`` is not set, the supervisor logs one clear line ("Hilo <name> terminó / thread <name>
died: ..."), remembers the first such death in ``failed`` and sets ``stop``, so the whole service
shuts down; its CLI then exits with ``EX_SOFTWARE`` and systemd restarts it. While any worker is
dead ``alive()`` is False, so a service reports "online" only while every worker runs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

EX_SOFTWARE = 70
"""Exit code of a service stopped by a dead worker (sysexits.h: internal software error)."""

Worker = Callable[[threading.Event], None]


class Supervisor:
    """Starts named worker threads and turns the death of any of them into a service stop."""

    def __init__(self, name: str, stop: threading.Event, log: logging.Logger) -> None:
        self._name = name
        self._stop = stop
        self._log = log
        self._threads: dict[str, threading.Thread] = {}
        self._failed: str | None = None
        self._lock = threading.Lock()

    def start(self, name: str, target: Worker) -> None:
        """Run ``target(stop)`` in a daemon thread called ``name`` (unique in this service)."""
        with self._lock:
            if name in self._threads:
                raise ValueError(f"a worker called {name!r} was already started")
            thread = threading.Thread(target=self._run, args=(name, target), name=name, daemon=True)
            self._threads[name] = thread
        thread.start()

    @property
    def failed(self) -> str | None:
        """Name and reason of the first worker that died, or None."""
        with self._lock:
            return self._failed

    def alive(self) -> bool:
        """Whether every started worker is still running (and none has died)."""
        with self._lock:
            threads = list(self._threads.values())
            failed = self._failed
        return failed is None and all(t.is_alive() for t in threads)

    def join(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` in total for every worker to end."""
        with self._lock:
            threads = list(self._threads.values())
        deadline = time.monotonic() + timeout_s  # thread joins wait real time, not a Clock's
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self, name: str, target: Worker) -> None:
        try:
            target(self._stop)
        except BaseException as exc:  # noqa: BLE001 - a worker's death of any kind is reported
            self._died(name, f"{type(exc).__name__}: {exc}", exc)
            return
        if not self._stop.is_set():
            self._died(name, "returned while the service was running", None)

    def _died(self, name: str, reason: str, exc: BaseException | None) -> None:
        with self._lock:
            first = self._failed is None
            if first:
                self._failed = f"{name}: {reason}"
        self._log.critical(
            "%s: Hilo %s terminó / thread %s died: %s%s",
            self._name,
            name,
            name,
            reason,
            "" if first else " (after an earlier failure)",
            exc_info=exc,
        )
        self._stop.set()
