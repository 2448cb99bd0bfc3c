"""Counting bad input: every problem is counted per cause and logged once per cause per window."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable


class ProblemLog:
    """Counts problems by cause and logs the first of each cause per ``window_s`` seconds.

    A flood of garbage on a serial line or a broker topic then costs one log line per cause per
    window, with a count of how many were suppressed, instead of one line per bad frame.
    """

    def __init__(
        self,
        logger: logging.Logger,
        window_s: float = 300.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._window_s = window_s
        self._monotonic = monotonic
        self._counts: Counter[str] = Counter()
        self._last_logged: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()
        self._lock = threading.Lock()

    def report(self, cause: str, detail: str = "") -> None:
        """Count one problem of ``cause`` and log it unless this cause was logged recently."""
        now = self._monotonic()
        with self._lock:
            self._counts[cause] += 1
            last = self._last_logged.get(cause)
            if last is not None and now - last < self._window_s:
                self._suppressed[cause] += 1
                return
            suppressed = self._suppressed.pop(cause, 0)
            self._last_logged[cause] = now
        more = f" (+{suppressed} more since last log)" if suppressed else ""
        self._logger.warning("problem %s: %s%s", cause, detail[:300], more)

    def count(self, cause: str) -> int:
        """How many problems of ``cause`` were reported."""
        with self._lock:
            return self._counts[cause]

    def total(self) -> int:
        """How many problems were reported, all causes together."""
        with self._lock:
            return sum(self._counts.values())

    def snapshot(self) -> dict[str, int]:
        """Counts by cause."""
        with self._lock:
            return dict(self._counts)
