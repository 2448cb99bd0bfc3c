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


class SteppingClock:
    """Wall clock set by the test, where moving ``now`` forward is time passing: the monotonic
    clock (real time plus every forward move) advances by the same amount. ``step_wall`` moves
    only the wall clock, as an NTP correction or an operator setting the date does; moving
    ``now`` backwards is such a step too."""

    def __init__(self, now_ms: int) -> None:
        self._now = now_ms
        self._ahead_s = 0.0

    @property
    def now(self) -> int:
        return self._now

    @now.setter
    def now(self, value: int) -> None:
        if value > self._now:
            self._ahead_s += (value - self._now) / 1000
        self._now = value

    def step_wall(self, delta_ms: int) -> None:
        """The wall clock jumps by ``delta_ms``; no time passes."""
        self._now += delta_ms

    def now_ms(self) -> int:
        return self._now

    def monotonic(self) -> float:
        return time.monotonic() + self._ahead_s

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
