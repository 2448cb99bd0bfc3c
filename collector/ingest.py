"""Ingest: MQTT deliveries → validated readings → line protocol → InfluxDB → MQTT ack.

The MQTT network thread only enqueues deliveries. A converter thread takes what is queued
(up to ``batch_max_points`` points), validates and formats it; a writer thread writes each
batch in one request, retrying retryable failures for as long as it takes, and only then
acknowledges the batch's messages (``manual_ack``), batches in the order they were taken.
The two overlap: the next batch is decoded and formatted while the previous one is written. Unacked
messages are bounded by the session's Receive Maximum, so a slow database slows the broker's
delivery instead of growing memory. Invalid input is dead-lettered with its reason, counted,
and acknowledged so it does not block the stream.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from farmwatch_shared.backoff import Backoff
from farmwatch_shared.clock import Clock
from farmwatch_shared.contract import (
    AgentStatus,
    ContractError,
    DeadLetter,
    ReadingBatch,
    decode_message,
    reading_problem,
)
from farmwatch_shared.influx import PermanentWriteError, PointWriter, RetryableWriteError
from farmwatch_shared.lineprotocol import reading_lines, status_line
from farmwatch_shared.mqtt import Delivery
from farmwatch_shared.problems import ProblemLog

log = logging.getLogger(__name__)

Acknowledge = Callable[[Delivery], None]
DeadLetterSink = Callable[[DeadLetter], None]


@dataclass
class IngestStats:
    """Counters, read by the service's periodic log and by tests."""

    messages: int = 0
    points_written: int = 0
    batches_written: int = 0
    write_retries: int = 0
    dead_letters: int = 0
    by_cause: dict[str, int] = field(default_factory=dict)


@dataclass
class _Pending:
    deliveries: list[Delivery] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    line_origin: list[Delivery] = field(default_factory=list)


class Ingestor:
    """Validates, batches and writes deliveries; acknowledges only what was written."""

    def __init__(
        self,
        *,
        writer: PointWriter,
        acknowledge: Acknowledge,
        dead_letter: DeadLetterSink,
        clock: Clock,
        problems: ProblemLog,
        batch_max_points: int = 5000,
        backoff: Backoff | None = None,
    ) -> None:
        self._writer = writer
        self._acknowledge = acknowledge
        self._dead_letter = dead_letter
        self._clock = clock
        self._problems = problems
        self._batch_max = batch_max_points
        self._backoff = backoff or Backoff(initial_s=0.5, max_s=30.0)
        self._inbox: queue.SimpleQueue[Delivery] = queue.SimpleQueue()
        self._batches: queue.Queue[_Pending] = queue.Queue(maxsize=1)
        """Converted batches waiting for the writer: one, so at most one is formatted ahead."""
        self._stats_lock = threading.Lock()
        self.stats = IngestStats()

    def submit(self, delivery: Delivery) -> None:
        """Queue a delivery (called from the MQTT network thread)."""
        self._inbox.put(delivery)

    def run(self, stop: threading.Event) -> None:
        """Work until ``stop`` is set; unwritten messages stay unacknowledged (redelivered)."""
        writer = threading.Thread(target=self._write_batches, args=(stop,), name="ingest-write")
        writer.start()
        try:
            self._convert_batches(stop)
        finally:
            writer.join()

    def _convert_batches(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                first = self._inbox.get(timeout=0.2)
            except queue.Empty:
                continue
            pending = _Pending()
            self._convert(first, pending)
            while len(pending.lines) < self._batch_max:
                try:
                    self._convert(self._inbox.get_nowait(), pending)
                except queue.Empty:
                    break
            while not stop.is_set():
                try:
                    self._batches.put(pending, timeout=0.2)
                    break
                except queue.Full:
                    continue

    def _write_batches(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                pending = self._batches.get(timeout=0.2)
            except queue.Empty:
                continue
            if pending.lines and not self._write_all(pending.lines, pending.line_origin, stop):
                return
            for delivery in pending.deliveries:
                self._acknowledge(delivery)

    def _convert(self, delivery: Delivery, pending: _Pending) -> None:
        with self._stats_lock:
            self.stats.messages += 1
        pending.deliveries.append(delivery)
        try:
            message = decode_message(delivery.topic, delivery.payload)
        except ContractError as exc:
            self._reject(delivery, exc.cause, exc.detail)
            return
        if message is None:
            return  # a cleared retained status
        if isinstance(message, ReadingBatch):
            lines = self._reading_lines(delivery, message)
        elif isinstance(message, AgentStatus):
            lines = [status_line(message, self._clock.now_ms())]
        else:  # the collector's own confirmations: not subscribed, nothing to store
            self._reject(delivery, "bad_topic", delivery.topic[:200])
            return
        pending.lines.extend(lines)
        pending.line_origin.extend([delivery] * len(lines))

    def _reading_lines(self, delivery: Delivery, batch: ReadingBatch) -> list[str]:
        farm, agent = batch.farm, batch.agent
        now_ms = self._clock.now_ms()
        checked = [(reading, reading_problem(reading, now_ms)) for reading in batch.readings]
        refused = [
            f"seq {r.seq} {r.sensor}: {problem} ({r.value} at {r.ts})"
            for r, problem in checked
            if problem is not None
        ]
        if not refused:
            return reading_lines(farm, agent, batch.readings)
        self._reject(delivery, "impossible_value", "; ".join(refused[:20]))
        return reading_lines(farm, agent, [r for r, problem in checked if problem is None])

    def _reject(self, delivery: Delivery, cause: str, detail: str) -> None:
        self._problems.report(cause, f"{delivery.topic}: {detail}")
        with self._stats_lock:
            self.stats.dead_letters += 1
            self.stats.by_cause[cause] = self.stats.by_cause.get(cause, 0) + 1
        self._dead_letter(
            DeadLetter(
                reason=cause,
                topic=delivery.topic,
                payload_hex=delivery.payload[:1024].hex(),
                detail=detail[:2000],
            )
        )

    def _write_all(
        self, lines: Sequence[str], origin: Sequence[Delivery], stop: threading.Event
    ) -> bool:
        """Write lines, retrying until accepted; bisect to isolate points the database refuses."""
        while True:
            try:
                self._writer.write(lines)
            except RetryableWriteError as exc:
                with self._stats_lock:
                    self.stats.write_retries += 1
                self._problems.report(
                    "database_unavailable",
                    f"InfluxDB no disponible, reintentando / unavailable, retrying: {exc}",
                )
                if stop.wait(self._backoff.next_delay()):
                    return False
                continue
            except PermanentWriteError as exc:
                if len(lines) == 1:
                    self._reject(origin[0], "database_refused", f"{exc} :: {lines[0][:300]}")
                    return True
                half = len(lines) // 2
                return self._write_all(lines[:half], origin[:half], stop) and self._write_all(
                    lines[half:], origin[half:], stop
                )
            self._backoff.reset()
            with self._stats_lock:
                self.stats.batches_written += 1
                self.stats.points_written += len(lines)
            return True
