"""The hub uplink: the same outbox and batches as the MQTT uplink, published to the hub's
stream (``farmwatch.v1.<farm>.<agent>.readings``, docs/scale-out.md).

A JetStream publish acknowledgement is the stream's word that a majority of its nodes hold the
batch (a replicated commit), so it is what releases readings from the outbox: there is no
``Committed`` to wait for. Every batch carries ``Nats-Msg-Id`` from its agent and its first and
last sequence numbers (``layout.batch_msg_id``): a batch sent again because its acknowledgement
was lost is stored once (the stream answers ``duplicate``) within the stream's duplicate window;
after it, or cut differently after a restart, it is stored again and the database makes the
same point of it.

A batch not acknowledged (timeout, no stream leader during an election, the stream full) is
sent again after a growing pause, one batch at a time while the hub does not answer. A publish
the server refuses (the user's permissions do not cover the subject) is reported as refused:
the server says so at once (``Refused``), the readings stay in the outbox and are offered again
at most every five minutes, with a problem report each time (``publish_refused``).

Runs in the agent's uplink thread; the link's thread only puts events on ``events``.
"""

from __future__ import annotations

import concurrent.futures
import heapq
import itertools
import logging
import queue
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, Unpack

from edge.transport import UplinkArgs
from edge.uplink_core import OutboxUplink
from farmwatch_shared.backoff import Backoff
from farmwatch_shared.contract import Reading, seq_ranges
from farmwatch_shared.hub.layout import batch_msg_id, readings_subject

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stored:
    """The stream acknowledged publish ``token`` (``duplicate``: it held that batch already)."""

    token: int
    duplicate: bool


@dataclass(frozen=True)
class NotStored:
    """Publish ``token`` got no acknowledgement (the reason, for the log)."""

    token: int
    reason: str


@dataclass(frozen=True)
class Refused:
    """The server refused a publish to ``subject`` (lower-cased): the user may not."""

    subject: str


HubEvent = Stored | NotStored | Refused
HubEventQueue = queue.SimpleQueue[HubEvent]


class HubPublisher(Protocol):
    """The part of the hub link the uplink uses."""

    @property
    def connected(self) -> bool:
        """Connected to a node now."""

    def publish(
        self, subject: str, payload: bytes, msg_id: str | None
    ) -> concurrent.futures.Future[bool]:
        """A JetStream publish; the future holds whether the stream called it a duplicate, or
        the exception that says it was not stored."""


@dataclass(frozen=True)
class _Batch:
    seqs: list[int]
    attempt: int


class JetStreamUplink(OutboxUplink[_Batch]):
    """Moves readings from the outbox to the hub's stream, and forgets them once stored."""

    def __init__(
        self,
        *,
        publisher: HubPublisher,
        events: HubEventQueue,
        wake: Callable[[], None],
        **args: Unpack[UplinkArgs],
    ) -> None:
        super().__init__(**args)
        self.subject = readings_subject(self._farm, self._agent)
        self._publisher = publisher
        self._events = events
        self._wake = wake
        self._tokens = itertools.count(1)
        self._retry: list[tuple[float, int, _Batch]] = []
        """Heap by due time: batches to send again."""
        self._pending: set[int] = set()
        """Seqs in flight or waiting to be sent again."""
        self._refusal_backoff = Backoff(initial_s=5.0, max_s=300.0)
        self.refused = False
        """The hub refused our last publish (until a batch is stored again)."""
        self.duplicates = 0
        """Batches sent again that the stream already held (stored once)."""
        self.refusals = 0

    @property
    def _link_up(self) -> bool:
        return self._publisher.connected

    # events ------------------------------------------------------------------------------
    def _process_events(self) -> bool:
        progressed = False
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return progressed
            progressed = True
            if isinstance(event, Stored):
                self._stored(event)
            elif isinstance(event, NotStored):
                self._not_stored(event)
            elif event.subject == self.subject.lower():
                self._refused()

    def _stored(self, event: Stored) -> None:
        batch = self._inflight.pop(event.token, None)
        if batch is None:
            return
        self._pending.difference_update(batch.seqs)
        self.readings_committed += self._outbox.commit(seq_ranges(batch.seqs))
        self.duplicates += int(event.duplicate)
        self.refused = False
        self._paused_until = None
        self._failure_backoff.reset()
        self._refusal_backoff.reset()

    def _not_stored(self, event: NotStored) -> None:
        batch = self._inflight.pop(event.token, None)
        if batch is None:
            return  # already taken back by a refusal
        self._problems.report(
            "publish_not_acked",
            f"el hub no confirmó un lote de {len(batch.seqs)} lecturas ({event.reason}): se "
            f"reenvía / the hub did not acknowledge a batch of {len(batch.seqs)} readings "
            f"({event.reason}): sent again later",
        )
        now = self._clock.monotonic()
        self._push_retry(_Batch(batch.seqs, batch.attempt + 1), due=now)
        if self._paused_until is None or now >= self._paused_until:
            self._paused_until = now + self._failure_backoff.next_delay()

    def _refused(self) -> None:
        self.refusals += 1
        self.refused = True
        now = self._clock.monotonic()
        held = sum(len(batch.seqs) for batch in self._inflight.values())
        for batch in self._inflight.values():
            self._push_retry(_Batch(batch.seqs, batch.attempt + 1), due=now)
        self._inflight.clear()
        delay = self._refusal_backoff.next_delay()
        self._paused_until = now + delay
        backlog = self._outbox.backlog()
        self._problems.report(
            "publish_refused",
            f"el hub rechazó {self.subject} (permisos): se guardan {backlog} lecturas / the hub "
            f"refused {self.subject} (the user's permissions): {backlog} readings kept "
            f"({held} were in flight), retry in {delay:.0f} s",
        )

    # publishing --------------------------------------------------------------------------
    def _push_retry(self, batch: _Batch, due: float) -> None:
        heapq.heappush(self._retry, (due, next(self._order), batch))

    def _send_next(self) -> bool:
        """Publish the next due batch; False when there is none."""
        now = self._clock.monotonic()
        while self._retry and self._retry[0][0] <= now:
            _, _, batch = heapq.heappop(self._retry)
            readings = self._outbox.in_ranges(seq_ranges(batch.seqs), len(batch.seqs))
            self._pending.difference_update(batch.seqs)
            if not readings:  # dropped by the outbox's bound meanwhile
                continue
            self._publish(readings, batch.attempt)
            return True
        readings = self._next_new()
        if not readings:
            return False
        count = self._publish(readings, 0)
        self._release.sent(readings[:count])
        self._cursor = max(self._cursor, readings[count - 1].seq)
        return True

    def _next_new(self) -> list[Reading]:
        readings = [
            r
            for r in self._outbox.after(self._cursor, self._batch_max + len(self._pending))
            if r.seq not in self._pending
        ][: self._batch_max]
        return readings if self._release.due(readings) else []

    def _publish(self, readings: list[Reading], attempt: int) -> int:
        """Publish the longest prefix of ``readings`` that fits; return how many went."""
        encoded = self._encode(readings)
        seqs = [r.seq for r in readings[: encoded.count]]
        token = next(self._tokens)
        self._inflight[token] = _Batch(seqs, attempt)
        self._pending.update(seqs)
        msg_id = batch_msg_id(self._farm, self._agent, seqs[0], seqs[-1])
        future = self._publisher.publish(self.subject, encoded.payload, msg_id)
        future.add_done_callback(lambda done: self._done(token, done))
        self.messages_sent += 1
        self.bytes_sent += len(encoded.payload)
        return encoded.count

    def _done(self, token: int, future: concurrent.futures.Future[bool]) -> None:
        """On the link's thread: only queue the outcome."""
        try:
            duplicate = future.result()
        except Exception as exc:  # noqa: BLE001 - whatever failed, the batch stays in the outbox
            self._events.put(NotStored(token, f"{type(exc).__name__}: {exc}"[:200]))
        else:
            self._events.put(Stored(token, duplicate))
        self._wake()
