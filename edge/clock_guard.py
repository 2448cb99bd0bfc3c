"""Clock sanity at the edge: a Raspberry Pi has no real-time clock and boots with a wrong time
until NTP synchronises it.

While the clock is not trusted, readings are committed with the ``CLOCK_UNSYNCED`` flag and the
monotonic time they were taken, and held back. Once the clock is trusted, each held reading of
this boot gets ``ts = now − (monotonic now − monotonic then)`` and the ``CLOCK_CORRECTED`` flag,
and is published. Held readings of an earlier boot cannot be corrected; they are quarantined.
"""

from __future__ import annotations

import ctypes
import functools
import logging
from collections.abc import Callable
from pathlib import Path

from farmwatch_shared.clock import Clock

log = logging.getLogger(__name__)

PLAUSIBLE_AFTER_MS = 1_767_225_600_000
"""2026-01-01T00:00:00Z: this release was built after it, so an earlier clock is wrong."""
TIME_ERROR = 5
"""adjtimex() result when the kernel clock is not synchronised."""

SyncProbe = Callable[[], bool | None]
"""True: the clock is synchronised; False: it is not; None: cannot tell."""


class _Timex(ctypes.Structure):
    _fields_ = [("modes", ctypes.c_uint), ("_rest", ctypes.c_byte * 204)]


@functools.cache
def _adjtimex() -> Callable[..., int] | None:
    """libc's adjtimex, looked up once: the interpreter's own libc (``dlopen(NULL)``), so no
    ``ctypes.util.find_library``, which runs ``ldconfig -p`` in a child process on every call."""
    try:
        function: Callable[..., int] = ctypes.CDLL(None, use_errno=True).adjtimex
    except (OSError, AttributeError):
        return None
    return function


def kernel_sync_probe() -> bool | None:
    """Ask the kernel (adjtimex, read-only) whether NTP has synchronised the clock."""
    adjtimex = _adjtimex()
    if adjtimex is None:
        return None
    try:
        state = int(adjtimex(ctypes.pointer(_Timex())))
    except OSError:
        return None
    if state < 0:
        return None
    return state != TIME_ERROR


TIMESYNCD_FLAG = Path("/run/systemd/timesync/synchronized")


def ntp_sync_probe() -> bool | None:
    """Synchronised if systemd-timesyncd says so (Raspberry Pi OS) or the kernel does."""
    if TIMESYNCD_FLAG.exists():
        return True
    return kernel_sync_probe()


def current_boot_id() -> str:
    """The kernel's id of this boot (monotonic time is only comparable within one boot)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


class ClockGuard:
    """Decides whether the wall clock can be trusted for timestamps.

    Always: a time before this release is wrong. With a ``probe`` (``ntp_sync_probe`` on a Pi
    without a real-time clock, where fake-hwclock restores a plausible but stale time), the
    clock is trusted only once the probe says it is synchronised.
    """

    def __init__(
        self, clock: Clock, probe: SyncProbe | None = None, recheck_s: float = 5.0
    ) -> None:
        self._clock = clock
        self._probe = probe
        self._recheck_s = recheck_s
        self._checked_at: float | None = None
        self._trusted = False

    def trusted(self) -> bool:
        """Whether readings taken now get a trustworthy timestamp (re-checked every few s)."""
        now = self._clock.monotonic()
        if self._checked_at is None or now - self._checked_at >= self._recheck_s:
            self._checked_at = now
            plausible = self._clock.now_ms() >= PLAUSIBLE_AFTER_MS
            trusted = plausible and (self._probe is None or self._probe() is True)
            if trusted and not self._trusted:
                log.info("Reloj confiable / clock trusted")
            elif self._trusted and not trusted:
                log.warning(
                    "Reloj no confiable: se retienen las lecturas / clock not trusted: "
                    "holding readings"
                )
            self._trusted = trusted
        return self._trusted
