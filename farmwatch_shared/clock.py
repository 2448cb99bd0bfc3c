"""Clock interface: the one way services and tests inject time.

Every component that reads the time or waits takes a ``Clock`` in its constructor: wall-clock
time (``now_ms``) for timestamps, monotonic time (``monotonic``) for durations, and ``sleep``
for pauses, so a test can drive all three.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Wall-clock and monotonic time."""

    def now_ms(self) -> int:
        """UTC wall-clock time in milliseconds since the Unix epoch."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary start, never going backwards."""
        ...

    def sleep(self, seconds: float) -> None:
        """Pause the calling thread for ``seconds``."""
        ...


class SystemClock:
    """The machine's clocks."""

    def now_ms(self) -> int:
        """UTC wall-clock time in milliseconds since the Unix epoch."""
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        """Seconds from an arbitrary start, never going backwards."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Pause the calling thread for ``seconds``."""
        time.sleep(seconds)
