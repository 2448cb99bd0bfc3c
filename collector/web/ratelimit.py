"""The login limit: after a few failures per user name (or per client address) each further
attempt waits, twice as long after every failure, up to a cap. Pure bookkeeping on the
injected clock's monotonic time; memory is bounded (the oldest keys are forgotten first)."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

from farmwatch_shared.clock import Clock


@dataclass
class _Failures:
    count: int
    last_s: float
    blocked_until_s: float


@dataclass(frozen=True)
class ThrottlePolicy:
    """How many failures are free and how long the waits are."""

    free_per_user: int = 5
    free_per_address: int = 20
    base_s: float = 1.0
    max_s: float = 900.0
    forget_after_s: float = 3600.0
    """Failures this long after the last one are forgotten (the count starts again)."""
    max_keys: int = 10_000


class LoginThrottle:
    """Counts failed logins per ``user:<name>`` and ``addr:<address>`` (thread-safe).

    An attempt counts as a failure from the moment it is let through (``admit``) until it
    proves right (``succeeded``): many attempts fired at once are held back as surely as one
    after the other."""

    def __init__(self, clock: Clock, policy: ThrottlePolicy) -> None:
        self._clock = clock
        self._policy = policy
        self._keys: OrderedDict[str, _Failures] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after_s(self, user: str, address: str) -> int:
        """Whole seconds until a login for ``user`` from ``address`` may be tried; 0 = now."""
        with self._lock:
            return self._wait(user, address, self._clock.monotonic())

    def admit(self, user: str, address: str) -> int:
        """0 and the attempt is counted as failed until ``succeeded``; or the seconds to wait
        (nothing counted)."""
        now = self._clock.monotonic()
        with self._lock:
            wait = self._wait(user, address, now)
            if wait:
                return wait
            self._fail(_user_key(user), now, self._policy.free_per_user)
            self._fail(f"addr:{address}", now, self._policy.free_per_address)
            return 0

    def succeeded(self, user: str, address: str) -> None:
        """The admitted attempt had the right password: the user name's count starts again,
        the address's loses that one attempt (not all: one valid account must not unlock
        guessing at the others)."""
        with self._lock:
            self._keys.pop(_user_key(user), None)
            entry = self._keys.get(f"addr:{address}")
            if entry is not None:
                entry.count = max(entry.count - 1, 0)
                if entry.count < self._policy.free_per_address:
                    entry.blocked_until_s = 0.0

    def _wait(self, user: str, address: str, now: float) -> int:
        wait = 0.0
        for key in (_user_key(user), f"addr:{address}"):
            entry = self._current(key, now)
            if entry is not None:
                wait = max(wait, entry.blocked_until_s - now)
        return math.ceil(wait) if wait > 0 else 0

    def _current(self, key: str, now: float) -> _Failures | None:
        entry = self._keys.get(key)
        if entry is not None and now - entry.last_s > self._policy.forget_after_s:
            del self._keys[key]
            return None
        return entry

    def _fail(self, key: str, now: float, free: int) -> None:
        entry = self._current(key, now)
        if entry is None:
            entry = self._keys[key] = _Failures(0, now, 0.0)
        self._keys.move_to_end(key)
        entry.count += 1
        entry.last_s = now
        if entry.count >= free:
            doublings = min(entry.count - free, 30)
            wait = min(self._policy.base_s * 2.0**doublings, self._policy.max_s)
            entry.blocked_until_s = now + wait
        while len(self._keys) > self._policy.max_keys:
            self._keys.popitem(last=False)


def _user_key(user: str) -> str:
    return f"user:{user.strip().lower()[:64]}"
