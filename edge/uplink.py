"""Uplink: publishes outbox readings in batches at QoS 1; a reading leaves the outbox only when
the collector confirms it stored it (``Committed``), not when the broker acknowledged it.

Runs in the agent's uplink thread; the MQTT network thread only puts events on the ``events``
queue (PUBACKs, connections, the collector's confirmations). At most ``window`` batch messages
are in flight; every ``publish()`` result is checked (paho refuses silently with
MQTT_ERR_QUEUE_SIZE when its queue is full). Batches are cut by encoded size (``batching``).

A batch's life: published → PUBACK with reason 0 ("delivered to a subscriber"): its readings are
marked sent and wait for the collector's ``Committed``, which deletes them. Not delivered (PUBACK
0x10 "no matching subscribers", or any failure): sent again after a growing pause, during which
only one batch at a time probes the broker. Not confirmed within ``commit_timeout_s`` (then 2×,
4×… up to an hour): sent again; while the collector confirms nothing at all, only one overdue
batch at a time is sent again, the others wait for its first confirmation. A reconnect to a
broker that kept no session for the agent (CONNACK session_present=0), or an agent restart with
such a broker, sends again everything not yet confirmed. The collector's writes are idempotent:
a resend costs bandwidth, never a duplicate point.

New readings wait for a full batch or ``batch_max_age_s`` (minutes on a paid cellular link)
unless ``urgency`` (``edge/urgency.py``) finds news in them (a threshold crossed, a fast fall, a
sensor silent, the agent's restart): then they go at once.
"""

from __future__ import annotations

import heapq
import logging
import queue
from dataclasses import dataclass
from typing import Any, Protocol, Unpack

import paho.mqtt.client as paho

from edge.transport import UplinkArgs
from edge.uplink_core import OutboxUplink
from farmwatch_shared.contract import (
    Committed,
    Reading,
    SeqRange,
    committed_topic,
    decode_message,
    readings_topic,
    seq_ranges,
)

log = logging.getLogger(__name__)

COMMIT_TIMEOUT_MAX_S = 3600.0
"""The longest wait for a batch's confirmation before it is sent again."""


@dataclass(frozen=True)
class Puback:
    """The broker acknowledged message ``mid``; ``delivered``: with reason 0 (a subscriber got
    it), not 0x10 "no matching subscribers" nor a failure."""

    mid: int
    delivered: bool


@dataclass(frozen=True)
class Connected:
    """The broker accepted a connection; ``session_present``: it kept the agent's session."""

    session_present: bool


@dataclass(frozen=True)
class Confirmation:
    """A message on the agent's ``committed`` topic (not yet decoded)."""

    topic: str
    payload: bytes


UplinkEvent = Puback | Connected | Confirmation
EventQueue = queue.SimpleQueue[UplinkEvent]


class Publisher(Protocol):
    """The part of an MQTT session the uplink uses."""

    @property
    def connected(self) -> bool:
        """The session is connected to the broker now."""

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> Any:
        """Publish ``payload``; paho's message info (its ``mid`` is acknowledged later)."""


@dataclass(frozen=True)
class _Sent:
    """A batch handed to paho: its readings and how often they were sent before."""

    seqs: list[int]
    attempt: int
    probe: bool


@dataclass(frozen=True)
class _Pending:
    """Readings (inclusive seq ranges) waiting to be sent again, or for their confirmation."""

    ranges: list[SeqRange]
    attempt: int
    since: float
    """When they were (last) delivered to the broker (monotonic s)."""
    probe: bool = False


def _clip(ranges: list[SeqRange], after: int) -> list[SeqRange]:
    """The parts of ``ranges`` above ``after``."""
    return [(max(first, after + 1), last) for first, last in ranges if last > after]


class Uplink(OutboxUplink[_Sent]):
    """Moves readings from the outbox to the broker, and forgets them once stored."""

    def __init__(
        self,
        *,
        publisher: Publisher,
        events: EventQueue,
        commit_timeout_s: float,
        **args: Unpack[UplinkArgs],
    ) -> None:
        super().__init__(**args)
        self._topic = readings_topic(self._farm, self._agent)
        self._committed_topic = committed_topic(self._farm, self._agent)
        self._publisher = publisher
        self._events = events
        self._commit_timeout_s = commit_timeout_s
        self._resend: list[tuple[float, int, _Pending]] = []
        """Heap by due time: readings to send again."""
        self._awaiting: list[tuple[float, int, _Pending]] = []
        """Heap by deadline: readings delivered to the broker, waiting for confirmation."""
        self._deferred: list[_Pending] = []
        """Overdue readings held back while a probe waits for the collector's first answer."""
        self._probing_commit = False
        self._last_commit_at: float | None = None
        self.readings_acked = 0
        """Readings the broker acknowledged as delivered (PUBACK reason 0)."""
        sent = self._outbox.sent_ranges()  # sent by an earlier run and never confirmed
        if sent:
            self._await(_Pending(sent, 0, self._clock.monotonic()))

    @property
    def _link_up(self) -> bool:
        return self._publisher.connected

    def _housekeeping(self) -> bool:
        return self._expire_commits()

    # events ------------------------------------------------------------------------------
    def _process_events(self) -> bool:
        progressed = False
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return progressed
            progressed = True
            if isinstance(event, Puback):
                self._puback(event)
            elif isinstance(event, Connected):
                if not event.session_present:
                    self._session_lost()
            else:
                self._confirmation(event)

    def _puback(self, event: Puback) -> None:
        sent = self._inflight.pop(event.mid, None)
        if sent is None:
            return
        now = self._clock.monotonic()
        if event.delivered:
            self._outbox.mark_sent(sent.seqs)
            self.readings_acked += len(sent.seqs)
            self._await(_Pending(seq_ranges(sent.seqs), sent.attempt, now, sent.probe))
            self._paused_until = None
            self._failure_backoff.reset()
            return
        self._problems.report(
            "publish_not_delivered",
            f"el broker no entregó un lote (sin suscriptor o error) / the broker did not "
            f"deliver a batch of {len(sent.seqs)} readings (no subscriber, or an error): "
            "sent again later",
        )
        self._push_resend(_Pending(seq_ranges(sent.seqs), sent.attempt, now, sent.probe), due=now)
        if self._paused_until is None or now >= self._paused_until:
            self._paused_until = now + self._failure_backoff.next_delay()

    def _session_lost(self) -> None:
        again = self._outbox.mark_unsent_all()
        self._awaiting.clear()
        self._resend.clear()
        self._deferred.clear()
        self._probing_commit = False
        self._cursor = -1
        if again:
            log.info(
                "El broker no guardó la sesión: se reenvían %d lecturas sin confirmar / the "
                "broker kept no session: resending %d readings not yet confirmed",
                again,
                again,
            )

    def _confirmation(self, event: Confirmation) -> None:
        try:
            message = decode_message(event.topic, event.payload)
        except Exception as exc:  # noqa: BLE001 - one bad message is refused, the flow goes on
            self._refuse_confirmation(getattr(exc, "cause", "invalid"), exc)
            return
        if event.topic != self._committed_topic or not isinstance(message, Committed):
            self._refuse_confirmation("bad_topic", ValueError(event.topic[:120]))
            return
        self.readings_committed += self._outbox.commit(message.seqs)
        self._last_commit_at = self._clock.monotonic()
        self._probing_commit = False
        for pending in self._deferred:  # the collector answers again: send the overdue ones
            self._push_resend(pending, due=self._last_commit_at)
        self._deferred.clear()

    def _refuse_confirmation(self, cause: str, exc: Exception) -> None:
        self._problems.report(
            f"committed_{cause}",
            f"confirmación rechazada / confirmation refused: {type(exc).__name__}: {exc}"[:300],
        )

    # confirmations -----------------------------------------------------------------------
    def _await(self, pending: _Pending) -> None:
        delay = min(self._commit_timeout_s * 2**pending.attempt, COMMIT_TIMEOUT_MAX_S)
        heapq.heappush(self._awaiting, (pending.since + delay, next(self._order), pending))

    def _expire_commits(self) -> bool:
        now = self._clock.monotonic()
        expired = False
        while self._awaiting and self._awaiting[0][0] <= now:
            _, _, pending = heapq.heappop(self._awaiting)
            expired = True
            if pending.probe:
                self._probing_commit = False
            left = self._outbox.count_in(pending.ranges)
            if not left:
                if pending.probe:
                    self._promote_deferred(now)
                continue
            again = _Pending(pending.ranges, pending.attempt + 1, pending.since)
            confirmed_since = self._last_commit_at is not None and (
                self._last_commit_at >= pending.since
            )
            if not confirmed_since and self._probing_commit:
                self._deferred.append(again)
                continue
            if not confirmed_since:
                self._probing_commit = True
                again = _Pending(again.ranges, again.attempt, again.since, probe=True)
            self._problems.report(
                "commit_timeout",
                f"{left} lecturas sin confirmación del colector: se reenvían / {left} readings "
                "not confirmed stored by the collector: sending them again",
            )
            self._push_resend(again, due=now)
        return expired

    def _promote_deferred(self, now: float) -> None:
        """The probe is gone without an answer: the oldest held-back readings probe next."""
        if self._deferred and not self._probing_commit:
            pending = self._deferred.pop(0)
            self._probing_commit = True
            probe = _Pending(pending.ranges, pending.attempt, pending.since, probe=True)
            self._push_resend(probe, due=now)

    # publishing --------------------------------------------------------------------------
    def _push_resend(self, pending: _Pending, due: float) -> None:
        heapq.heappush(self._resend, (due, next(self._order), pending))

    def _send_next(self) -> bool:
        """Publish the next due batch; False when there is none or paho refused it."""
        now = self._clock.monotonic()
        while self._resend and self._resend[0][0] <= now:
            _, _, pending = heapq.heappop(self._resend)
            readings = self._outbox.in_ranges(pending.ranges, self._batch_max)
            if not readings:  # confirmed (or dropped by the bound) meanwhile
                if pending.probe:
                    self._probing_commit = False
                    self._promote_deferred(now)
                continue
            count = self._publish(readings, pending.attempt, pending.probe)
            if count == 0:
                self._push_resend(pending, due=now)
                return False
            rest = _clip(pending.ranges, readings[count - 1].seq)
            if rest:
                left = _Pending(rest, pending.attempt, pending.since)
                if pending.probe:  # a probe is one batch: the rest waits for its answer
                    self._deferred.append(left)
                else:
                    self._push_resend(left, due=now)
            return True
        readings = self._next_new()
        if not readings:
            return False
        count = self._publish(readings, 0, False)
        if count:
            self._release.sent(readings[:count])
            self._cursor = max(self._cursor, readings[count - 1].seq)
        return count > 0

    def _next_new(self) -> list[Reading]:
        readings = self._outbox.unsent_after(self._cursor, self._batch_max)
        if self._cursor < 0 and self._inflight:
            sent = {seq for batch in self._inflight.values() for seq in batch.seqs}
            readings = [r for r in readings if r.seq not in sent]
        return readings if self._release.due(readings) else []

    def _publish(self, readings: list[Reading], attempt: int, probe: bool) -> int:
        """Publish the longest prefix of ``readings`` that fits; return how many went (0: paho
        refused the message)."""
        encoded = self._encode(readings)
        info = self._publisher.publish(self._topic, encoded.payload, qos=1)
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
            self._problems.report("publish_not_queued", f"paho rc={info.rc}")
            return 0
        seqs = [r.seq for r in readings[: encoded.count]]
        self._inflight[info.mid] = _Sent(seqs, attempt, probe)
        self.messages_sent += 1
        self.bytes_sent += len(encoded.payload)
        return encoded.count
