"""Clocks the tests set."""

from __future__ import annotations

import time


class FrozenClock:
    """Wall clock set by the test; monotonic time is real."""

    def __init__(self, now_ms: int) -> None:
        self.now = now_ms

    def now_ms(self) -> int:
        return self.now

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
