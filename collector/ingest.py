"""Ingest: MQTT deliveries → checked messages → line protocol → InfluxDB → Committed → MQTT ack.

The MQTT network thread only enqueues deliveries. A converter worker takes what is queued (up
to ``batch_max_points`` points) and checks each message (``collector.checks``); a writer worker
writes each batch in one request, retrying retryable failures for as long as it takes, and
only then confirms the batch's readings to their agents (one ``Committed`` per agent per write,
QoS 1) and acknowledges its messages (``manual_ack``), batches in the order they were taken.
The two overlap: the next batch is checked and formatted while the previous one is written.
Unacked messages are bounded by the session's Receive Maximum, so a slow database slows the
broker's delivery instead of growing memory.

One message never stops the stream: any exception while checking it refuses it
(``internal_error``), like any other refusal. A refused message is stored whole in the durable
quarantine before it is acknowledged or confirmed, published (truncated) on the dead-letter
topic for visibility, counted, and logged once per cause. The two workers run under the
service's ``Supervisor``: a worker that dies anyway (the quarantine's disk failing) stops the
service, and what was not acknowledged is redelivered after the restart.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from collector.checks import Checked, Refusal, check_message
from collector.quarantine import QuarantineStore
from farmwatch_shared.backoff import Backoff
from farmwatch_shared.clock import Clock
from farmwatch_shared.contract import MAX_COMMITTED_RANGES, Committed, DeadLetter, seq_ranges
from farmwatch_shared.influx import PermanentWriteError, PointWriter, RetryableWriteError
from farmwatch_shared.mqtt import Delivery
from farmwatch_shared.problems import ProblemLog
from farmwatch_shared.supervisor import Supervisor

log = logging.getLogger(__name__)

Acknowledge = Callable[[Delivery], None]
DeadLetterSink = Callable[[DeadLetter], None]
ConfirmSink = Callable[[Committed], None]
"""Publishes a commit confirmation to its agent."""
DEAD_LETTER_PAYLOAD_BYTES = 1024
"""Payload bytes a dead letter shows (the quarantine keeps the whole payload)."""


@dataclass
class IngestStats:
    """Counters, read by the service's periodic log and by tests."""

    messages: int = 0
    points_written: int = 0
    batches_written: int = 0
    write_retries: int = 0
    dead_letters: int = 0
    """Messages refused (whole or in part), by cause in ``by_cause``."""
    quarantined: int = 0
    """Refusals stored in the durable quarantine."""
    quarantine_full: int = 0
    """Refusals the full quarantine could not take (their readings are not confirmed)."""
    confirmations: int = 0
    """``Committed`` messages published."""
    status_replays: int = 0
    """Retained statuses without ``ts`` not stored again."""
    by_cause: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Line:
    delivery: Delivery
    agent: tuple[str, str] | None
    seq: int | None


@dataclass
class _Pending:
    deliveries: list[Delivery] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    origins: list[_Line] = field(default_factory=list)
    confirm: dict[tuple[str, str], set[int]] = field(default_factory=dict)
    """Per agent, the seqs to confirm once the lines are written."""


class Ingestor:
    """Checks, batches and writes deliveries; confirms and acknowledges only what is stored
    (in the database, or durably quarantined)."""

    def __init__(
        self,
        *,
        writer: PointWriter,
        acknowledge: Acknowledge,
        quarantine: QuarantineStore,
        dead_letter: DeadLetterSink,
        confirm: ConfirmSink,
        farms: Collection[str],
        clock: Clock,
        problems: ProblemLog,
        batch_max_points: int = 5000,
        backoff: Backoff | None = None,
    ) -> None:
        self._writer = writer
        self._acknowledge = acknowledge
        self._quarantine = quarantine
        self._dead_letter = dead_letter
        self._confirm = confirm
        self._farms = frozenset(farms)
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

    def start(self, supervisor: Supervisor) -> None:
        """Start the converter and writer workers; they run until the supervisor's stop is set
        (unwritten messages stay unacknowledged: redelivered)."""
        supervisor.start("ingest-convert", self._convert_batches)
        supervisor.start("ingest-write", self._write_batches)

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
            if pending.lines and not self._write_all(pending.lines, pending.origins, pending, stop):
                return
            self._send_confirmations(pending)
            for delivery in pending.deliveries:
                self._acknowledge(delivery)

    def _convert(self, delivery: Delivery, pending: _Pending) -> None:
        with self._stats_lock:
            self.stats.messages += 1
        pending.deliveries.append(delivery)
        try:
            checked = check_message(
                delivery.topic,
                delivery.payload,
                retained=delivery.retain,
                farms=self._farms,
                now_ms=self._clock.now_ms(),
            )
        except Exception as exc:  # noqa: BLE001 - any failure of one message is that message's
            checked = Checked(refusal=Refusal("internal_error", f"{type(exc).__name__}: {exc}"))
        if checked.replayed_status:
            with self._stats_lock:
                self.stats.status_replays += 1
            return
        stored = checked.refusal is None or self._refuse(delivery, checked.refusal)
        if checked.agent is not None:
            seqs = pending.confirm.setdefault(checked.agent, set())
            seqs.update(checked.written_seqs)
            if stored:
                seqs.update(checked.refused_seqs)
        pending.lines.extend(checked.lines)
        if checked.agent is not None:  # a batch: one line per written reading, in order
            pending.origins.extend(
                _Line(delivery, checked.agent, seq) for seq in checked.written_seqs
            )
        else:
            pending.origins.extend([_Line(delivery, None, None)] * len(checked.lines))

    def _refuse(self, delivery: Delivery, refusal: Refusal) -> bool:
        """Quarantine a refused message (whole), publish its dead letter, count it; whether it
        is durably stored. A failing quarantine disk raises: the worker dies, the service
        stops, and the unacknowledged message comes back after the restart."""
        self._problems.report(refusal.cause, f"{delivery.topic}: {refusal.detail}")
        stored = self._quarantine.add(
            delivery.topic, delivery.payload, refusal.cause, refusal.detail, self._clock.now_ms()
        )
        with self._stats_lock:
            self.stats.dead_letters += 1
            self.stats.by_cause[refusal.cause] = self.stats.by_cause.get(refusal.cause, 0) + 1
            if stored:
                self.stats.quarantined += 1
            else:
                self.stats.quarantine_full += 1
        if not stored:
            self._problems.report(
                "quarantine_full",
                f"cuarentena llena / quarantine full ({self._quarantine.path}): "
                f"{delivery.topic} not stored, its readings are not confirmed",
            )
        self._dead_letter(
            DeadLetter(
                reason=refusal.cause,
                topic=delivery.topic,
                payload_hex=delivery.payload[:DEAD_LETTER_PAYLOAD_BYTES].hex(),
                detail=refusal.detail[:2000],
                quarantined=stored,
            )
        )
        return stored

    def _send_confirmations(self, pending: _Pending) -> None:
        for (farm, agent), seqs in pending.confirm.items():
            ranges = seq_ranges(seqs)
            for start in range(0, len(ranges), MAX_COMMITTED_RANGES):
                chunk = ranges[start : start + MAX_COMMITTED_RANGES]
                self._confirm(Committed(v=1, farm=farm, agent=agent, seqs=chunk))
                with self._stats_lock:
                    self.stats.confirmations += 1

    def _write_all(
        self,
        lines: Sequence[str],
        origins: Sequence[_Line],
        pending: _Pending,
        stop: threading.Event,
    ) -> bool:
        """Write lines, retrying until accepted; bisect to isolate points the database refuses
        (each refused point's message is quarantined; an unstored one's seq is not confirmed)."""
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
                    origin = origins[0]
                    refusal = Refusal("database_refused", f"{exc} :: {lines[0][:300]}")
                    stored = self._refuse(origin.delivery, refusal)
                    if not stored and origin.agent is not None and origin.seq is not None:
                        pending.confirm.get(origin.agent, set()).discard(origin.seq)
                    return True
                half = len(lines) // 2
                return self._write_all(
                    lines[:half], origins[:half], pending, stop
                ) and self._write_all(lines[half:], origins[half:], pending, stop)
            self._backoff.reset()
            with self._stats_lock:
                self.stats.batches_written += 1
                self.stats.points_written += len(lines)
            return True
