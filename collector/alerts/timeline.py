"""Alert time: what ``for_s``, cooldowns, reminders and escalation are measured in.

The milliseconds of alert time advance with the monotonic clock, so a step of the wall clock
(NTP correcting a Pi that booted with a stale time, an operator setting the date) neither
fires an alert early nor holds it back, and it is persisted so a restart continues where it stopped:

* same boot (the kernel's boot id is unchanged): the monotonic clock is system-wide and has gone
  on counting, so the time the service was down is exact;
* after a reboot the monotonic clock starts again: the downtime is taken from the wall clock
  since the last checkpoint, and never counted negative (a clock that came back behind adds
  nothing).

The first start on a database takes the wall time as its origin, so rule states written by an
older release (wall milliseconds) keep their meaning.
"""

from __future__ import annotations

from pathlib import Path

from collector.alerts.store import AlertStore
from farmwatch_shared.clock import Clock

META_KEY = "alert_time"
BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")


def current_boot_id() -> str:
    """The kernel's id of this boot (monotonic time is only comparable within one boot);
    ``unknown`` where there is none: every restart then counts as a reboot."""
    try:
        return BOOT_ID_PATH.read_text().strip()
    except OSError:
        return "unknown"


class Timeline:
    """Monotonic alert time in milliseconds, continued across restarts (see the module)."""

    def __init__(self, store: AlertStore, clock: Clock, boot_id: str) -> None:
        self._store = store
        self._clock = clock
        self._boot_id = boot_id
        mono = clock.monotonic()
        wall = clock.now_ms()
        base = wall
        saved = store.meta(META_KEY)
        if saved is not None:
            elapsed_s, mono_s, wall_s, boot = saved.split(",", 3)
            if boot == boot_id and boot != "unknown" and mono >= float(mono_s):
                base = int(elapsed_s) + int((mono - float(mono_s)) * 1000)
            else:
                base = int(elapsed_s) + max(0, wall - int(wall_s))
        self._base_ms = base
        self._base_mono = mono
        self.checkpoint()

    def now_ms(self) -> int:
        """Alert time now."""
        return self._base_ms + int((self._clock.monotonic() - self._base_mono) * 1000)

    def checkpoint(self) -> None:
        """Persist (alert time, monotonic, wall, boot) so the next start can continue."""
        mono = self._clock.monotonic()
        elapsed = self._base_ms + int((mono - self._base_mono) * 1000)
        self._store.set_meta(META_KEY, f"{elapsed},{mono!r},{self._clock.now_ms()},{self._boot_id}")
