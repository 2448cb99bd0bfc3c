"""Uplink: publishes outbox readings in batches at QoS 1 and deletes them only on PUBACK.

Runs in the agent's main thread; the MQTT network thread only puts (mid, accepted) pairs on
the ``acks`` queue. At most ``window`` batch messages are in flight; every ``publish()`` result
is checked (paho refuses silently with MQTT_ERR_QUEUE_SIZE when its queue is full).
"""

from __future__ import annotations

import logging
import queue
from typing import Any, Protocol

import paho.mqtt.client as paho

from edge.outbox import Outbox
from farmwatch_shared.backoff import Backoff
from farmwatch_shared.clock import Clock
from farmwatch_shared.contract import Reading, ReadingBatch, encode_batch, readings_topic
from farmwatch_shared.problems import ProblemLog

log = logging.getLogger(__name__)

AckQueue = queue.SimpleQueue[tuple[int, bool]]


class Publisher(Protocol):
    """The part of an MQTT session the uplink uses."""

    @property
    def connected(self) -> bool:
        """The session is connected to the broker now."""

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> Any:
        """Publish ``payload``; paho's message info (its ``mid`` is acknowledged later)."""


class Uplink:
    """Moves readings from the outbox to the broker."""

    def __init__(
        self,
        *,
        farm: str,
        agent: str,
        outbox: Outbox,
        publisher: Publisher,
        acks: AckQueue,
        clock: Clock,
        problems: ProblemLog,
        batch_max_readings: int,
        batch_max_age_s: float,
        compress: bool,
        window: int,
    ) -> None:
        self._farm = farm
        self._agent = agent
        self._topic = readings_topic(farm, agent)
        self._outbox = outbox
        self._publisher = publisher
        self._acks = acks
        self._clock = clock
        self._problems = problems
        self._batch_max = batch_max_readings
        self._max_age_ms = int(batch_max_age_s * 1000)
        self._max_age_s = batch_max_age_s
        self._compress = compress
        self._window = window
        self._inflight: dict[int, list[int]] = {}
        self._cursor = -1
        """Highest sequence number handed to paho in this process."""
        self._retry: list[int] = []
        self._retry_at = 0.0
        self._retry_backoff = Backoff(initial_s=1.0, max_s=60.0)
        self._waiting_since: float | None = None
        self.messages_sent = 0
        self.bytes_sent = 0
        self.readings_acked = 0

    def rewind(self) -> None:
        """Scan the outbox from the start again (held readings were released)."""
        self._cursor = -1

    @property
    def inflight(self) -> int:
        """Batch messages handed to the broker and not yet acknowledged."""
        return len(self._inflight)

    def pump(self) -> bool:
        """Process acknowledgements and publish what is due; return whether anything happened."""
        progressed = self._process_acks()
        if not self._publisher.connected:
            return progressed
        while len(self._inflight) < self._window:
            batch = self._next_batch()
            if not batch:
                break
            if not self._publish(batch):
                break
            progressed = True
        return progressed

    def _process_acks(self) -> bool:
        progressed = False
        while True:
            try:
                mid, accepted = self._acks.get_nowait()
            except queue.Empty:
                return progressed
            seqs = self._inflight.pop(mid, None)
            if seqs is None:
                continue
            progressed = True
            if accepted:
                self._outbox.delete(seqs)
                self.readings_acked += len(seqs)
                self._retry_backoff.reset()
            else:
                self._problems.report(
                    "publish_refused",
                    f"el broker rechazó un lote / broker refused a batch of {len(seqs)} readings",
                )
                self._retry.extend(seqs)
                self._retry_at = self._clock.monotonic() + self._retry_backoff.next_delay()

    def _next_batch(self) -> list[Reading]:
        if self._retry and self._clock.monotonic() >= self._retry_at:
            seqs, self._retry = self._retry[: self._batch_max], self._retry[self._batch_max :]
            held = self._outbox.by_seq(seqs)
            if held:
                return held
        readings = self._outbox.after(self._cursor, self._batch_max)
        if self._cursor < 0 and self._inflight:
            sent = {seq for seqs in self._inflight.values() for seq in seqs}
            readings = [r for r in readings if r.seq not in sent]
        if not readings:
            self._waiting_since = None
            return []
        now = self._clock.monotonic()
        if self._waiting_since is None:
            self._waiting_since = now
        full = len(readings) >= self._batch_max
        old = self._clock.now_ms() - readings[0].ts >= self._max_age_ms
        waited = now - self._waiting_since >= self._max_age_s
        return readings if full or old or waited else []

    def _publish(self, batch: list[Reading]) -> bool:
        payload = encode_batch(
            ReadingBatch(v=1, farm=self._farm, agent=self._agent, readings=batch),
            compress=self._compress,
        )
        info = self._publisher.publish(self._topic, payload, qos=1)
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
            self._problems.report("publish_not_queued", f"paho rc={info.rc}")
            return False
        seqs = [r.seq for r in batch]
        self._inflight[info.mid] = seqs
        self._cursor = max(self._cursor, seqs[-1])
        self._waiting_since = None
        self.messages_sent += 1
        self.bytes_sent += len(payload)
        return True
