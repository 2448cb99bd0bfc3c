"""When new readings leave the outbox: the one rule both uplinks (MQTT and hub) follow.

New readings go as soon as they fill a batch (``batch_max_readings``), when the oldest of them
is ``batch_max_age_s`` old by its timestamp or has waited that long in the uplink (a reading
timed by a wrong clock still leaves), or when ``Urgency`` (``edge/urgency.py``) finds news in
them. Otherwise they wait: on a paid cellular link each message costs TLS records, TCP/IP
headers and acknowledgements.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from edge.urgency import Urgency
from farmwatch_shared.clock import Clock
from farmwatch_shared.contract import Reading

log = logging.getLogger(__name__)


class Release:
    """Decides whether the new readings waiting in the outbox go now (see the module)."""

    def __init__(
        self,
        clock: Clock,
        *,
        batch_max_readings: int,
        batch_max_age_s: float,
        urgency: Urgency,
    ) -> None:
        self._clock = clock
        self._batch_max = batch_max_readings
        self._max_age_s = batch_max_age_s
        self._max_age_ms = int(batch_max_age_s * 1000)
        self._urgency = urgency
        self._waiting_since: float | None = None

    def due(self, readings: Sequence[Reading]) -> bool:
        """Whether ``readings`` (the new ones waiting, in seq order) go now."""
        if not readings:
            self._waiting_since = None
            return False
        now = self._clock.monotonic()
        if self._waiting_since is None:
            self._waiting_since = now
        now_ms = self._clock.now_ms()
        if (
            len(readings) >= self._batch_max
            or now_ms - readings[0].ts >= self._max_age_ms
            or now - self._waiting_since >= self._max_age_s
        ):
            self._urgency.reason(readings, now_ms)  # it examines every reading once, in order
            return True
        urgent = self._urgency.reason(readings, now_ms)
        if urgent is not None:
            log.info("Envío inmediato / sending at once: %s", urgent)
        return urgent is not None

    def sent(self, readings: Sequence[Reading]) -> None:
        """The uplink published ``readings`` (a prefix of those found due)."""
        self._waiting_since = None
        self._urgency.sent(readings, self._clock.now_ms())
