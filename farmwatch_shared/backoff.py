"""Exponential backoff with full jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays that grow from ``initial_s`` to ``max_s``; each delay is jittered in [d/2, d]."""

    initial_s: float = 0.5
    max_s: float = 30.0
    factor: float = 2.0
    rng: random.Random = field(default_factory=random.Random)
    _current: float = field(default=0.0, init=False)

    def next_delay(self) -> float:
        """Return the next delay to wait and grow the following one."""
        self._current = (
            self.initial_s if self._current == 0 else min(self._current * self.factor, self.max_s)
        )
        return self._current * (0.5 + 0.5 * self.rng.random())

    def reset(self) -> None:
        """Start again from the initial delay (after a success)."""
        self._current = 0.0
