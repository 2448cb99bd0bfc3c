"""The hub's pull consumer, shaped like the MQTT ``Consumer`` the collector and the alerting
service already run on (``farmwatch_shared.mqtt.Consumer``): deliveries in, ``ack`` after the
caller stored them.

Each ``PullSource`` is a durable pull consumer of a stream that any number of processes share:
every message goes to one of them, and comes back to some process if it is not acknowledged
within the consumer's ``ack_wait`` (a collector killed mid-write). Pull requests ask for at most
``max_unacked`` minus what this process holds unacknowledged, so memory is bounded here, and
the consumer's ``max_ack_pending`` bounds every process together.

A message's subject maps onto its MQTT-contract topic (``layout.topic_of``): a batch on
``farmwatch.v1.<farm>.<agent>.readings`` is delivered as ``farmwatch/v1/<farm>/<agent>/readings``,
an agent's presence as its ``…/status``, and the marker the server places when that presence
aged out as an ``offline`` status at the marker's time (what MQTT's last will said).

A source with a priority ``group`` is pinned: the server gives its messages to one process at a
time (the pin, ``Nats-Pin-Id``) and to another once the holder stopped pulling for the
consumer's ``priority_timeout``. ``pinned`` says whether this process holds it: set with the
first message that carries the pin, cleared when the server answers 423 (another holds it) or
when no answer came for ``pinned_ttl_s``. Sources marked ``while_pinned`` are pulled only
meanwhile. ``heartbeat_s`` publishes on ``HEARTBEAT_SUBJECT`` so that a pin moves even when no
farm sends anything.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from farmwatch_shared.contract import AgentStatus, encode_status, parse_topic
from farmwatch_shared.hub.layout import (
    HEARTBEAT_SUBJECT,
    MARKER_HEADER,
    NS,
    PIN_HEADER,
    subject_of,
    topic_of,
)
from farmwatch_shared.hub.link import NatsLink
from farmwatch_shared.mqtt import Delivery, DeliveryHandler

__all__ = ["HubConsumer", "Published", "PullSource"]

log = logging.getLogger(__name__)
_ACK = b"+ACK"
_PIN_MISMATCH = "423"


@dataclass(frozen=True)
class PullSource:
    """A durable consumer to pull from."""

    stream: str
    consumer: str
    group: str | None = None
    """The priority group of a pinned consumer."""
    while_pinned: bool = False
    """Pull only while this process holds the pin of the pinned source."""


@dataclass(frozen=True)
class Published:
    """What ``publish`` returns (the MQTT ``PublishInfo`` shape): always queued."""

    rc: int = 0
    mid: int = 0


@dataclass
class _Pin:
    """The pin of the pinned source, as this process knows it (loop thread only)."""

    id: str | None = None
    answered_at: float = 0.0


class HubConsumer:
    """Pulls from its sources through one ``NatsLink`` and hands on ``Delivery`` objects."""

    def __init__(
        self,
        link: NatsLink,
        sources: Sequence[PullSource],
        *,
        fetch_batch: int = 200,
        max_unacked: int = 1000,
        pull_expires_s: float = 5.0,
        pinned_ttl_s: float = 20.0,
        heartbeat_s: float | None = None,
        stats_interval_s: float = 60.0,
    ) -> None:
        if sum(1 for s in sources if s.group is not None) > 1:
            raise ValueError("at most one pinned source")
        self._link = link
        self._sources = tuple(sources)
        self._fetch_batch = fetch_batch
        self._max_unacked = max_unacked
        self._expires_s = pull_expires_s
        self._pinned_ttl_s = pinned_ttl_s
        self._heartbeat_s = heartbeat_s
        self._stats_interval_s = stats_interval_s
        self._lock = threading.Lock()
        self._unacked: dict[int, str] = {}
        """Delivery mid → the message's acknowledgement subject."""
        self._next_mid = 1
        self._acks: list[str] = []
        self._ack_flush_due = False
        self._pin = _Pin()
        self._stopping = threading.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.subscribed = threading.Event()
        """Set once the server answered a pull request."""
        self.pinned = threading.Event()
        """Set while this process holds the pinned source's pin."""
        self.delivered = 0
        self.redelivered = 0
        """Messages delivered to this process that some process had been given before."""

    # -- the Consumer protocol ----------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """Connected to a node of the hub."""
        return self._link.connected

    def wait_connected(self, timeout_s: float) -> bool:
        """Wait until connected; False after ``timeout_s``."""
        return self._link.wait_connected(timeout_s)

    def start(self, on_delivery: DeliveryHandler) -> None:
        """Connect and pull; ``on_delivery`` runs on the link's thread: keep it short."""
        self._link.start()
        self._link.submit(self._start_tasks(on_delivery))

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop pulling and close the link; what was not acknowledged is delivered again
        (to another process, or to this one after a restart)."""
        self._stopping.set()
        if self.pinned.is_set():  # hand the pin over now, not after the priority timeout
            try:
                self._link.submit(self._unpin()).result(timeout_s)
            except Exception as exc:  # noqa: BLE001 - stopping anyway: the pin times out
                log.warning("No pude soltar el consumidor / could not unpin: %s", exc)
        self.pinned.clear()
        self._link.call_soon(self._cancel_tasks)
        self._link.stop(timeout_s)

    def ack(self, delivery: Delivery) -> None:
        """Acknowledge a delivery (any thread)."""
        with self._lock:
            reply = self._unacked.pop(delivery.mid, None)
            if reply is None:
                return
            self._acks.append(reply)
            if self._ack_flush_due:
                return
            self._ack_flush_due = True
        self._link.call_soon(self._flush_acks)  # one hop to the loop for a whole batch

    def _flush_acks(self) -> None:
        """On the loop thread: send every queued acknowledgement (buffered, one flush)."""
        with self._lock:
            replies, self._acks = self._acks, []
            self._ack_flush_due = False
        task = asyncio.get_running_loop().create_task(self._publish_all(replies, _ACK))
        self._tasks.append(task)
        task.add_done_callback(self._tasks.remove)

    async def _publish_all(self, subjects: list[str], payload: bytes) -> None:
        for subject in subjects:
            await self._publish(subject, payload)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> Published:
        """Send a service's contract message: a dead letter to its subject (core NATS); a
        ``committed`` confirmation is nothing to send in the hub (``layout.subject_of``)."""
        subject = subject_of(topic)
        if subject is not None and not subject.endswith(".readings"):
            self._link.submit(self._publish(subject, payload))
        return Published()

    @property
    def unacked(self) -> int:
        """Deliveries handed on and not yet acknowledged."""
        with self._lock:
            return len(self._unacked)

    # -- loop thread --------------------------------------------------------------------------
    async def _start_tasks(self, on_delivery: DeliveryHandler) -> None:
        loop = asyncio.get_running_loop()
        for source in self._sources:
            self._tasks.append(loop.create_task(self._pull_loop(source, on_delivery)))
        if self._heartbeat_s is not None:
            self._tasks.append(loop.create_task(self._heartbeats(self._heartbeat_s)))
        self._tasks.append(loop.create_task(self._log_stats()))

    async def _log_stats(self) -> None:
        last = (0, 0)
        while not self._stopping.is_set():
            await asyncio.sleep(self._stats_interval_s)
            now = (self.delivered, self.redelivered)
            if now != last:
                log.info(
                    "hub: delivered=%d redelivered=%d unacked=%d",
                    self.delivered,
                    self.redelivered,
                    self.unacked,
                )
                last = now

    async def _unpin(self) -> None:
        for source in self._sources:
            if source.group is not None:
                api = f"$JS.API.CONSUMER.UNPIN.{source.stream}.{source.consumer}"
                body = json.dumps({"group": source.group}).encode()
                await self._link.client.request(api, body, timeout=2.0)

    def _cancel_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def _publish(self, subject: str, payload: bytes) -> None:
        try:
            await self._link.client.publish(subject, payload)
        except (nats.errors.Error, OSError) as exc:
            log.warning("NATS publish %s: %s", subject, exc)

    async def _heartbeats(self, every_s: float) -> None:
        while not self._stopping.is_set():
            if self._link.connected:
                await self._publish(HEARTBEAT_SUBJECT, b"")
            await asyncio.sleep(every_s)

    async def _pull_loop(self, source: PullSource, on_delivery: DeliveryHandler) -> None:
        subscription: Subscription | None = None
        api = f"$JS.API.CONSUMER.MSG.NEXT.{source.stream}.{source.consumer}"
        while not self._stopping.is_set():
            if not self._link.wait_connected(0) or (source.while_pinned and not self._holds_pin()):
                await asyncio.sleep(0.1)
                continue
            room = self._max_unacked - self.unacked
            if room <= 0:
                await asyncio.sleep(0.01)
                continue
            try:
                if subscription is None:
                    inbox = self._link.client.new_inbox()
                    subscription = await self._link.client.subscribe(inbox)
                batch = min(room, self._fetch_batch)
                request = json.dumps(self._request(source, batch)).encode()
                await self._link.client.publish(api, request, reply=subscription.subject)
                await self._read(subscription, source, batch, on_delivery)
            except (nats.errors.Error, OSError) as exc:
                log.warning("Lectura del hub / hub pull %s: %s", source.consumer, exc)
                await asyncio.sleep(0.5)

    def _request(self, source: PullSource, batch: int) -> dict[str, Any]:
        request: dict[str, Any] = {"batch": batch, "expires": int(self._expires_s * NS)}
        if source.group is not None:
            request["group"] = source.group
            if self._pin.id is not None:
                request["id"] = self._pin.id
        return request

    async def _read(
        self,
        subscription: Subscription,
        source: PullSource,
        batch: int,
        on_delivery: DeliveryHandler,
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._expires_s + 1.0
        got = 0
        while got < batch and not self._stopping.is_set():
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                msg = await subscription.next_msg(timeout=left)
            except nats.errors.TimeoutError:
                break
            status = (msg.headers or {}).get("Status")
            if status is not None:
                self._status(source, status, loop.time())
                break
            got += 1
            self._message(source, msg, loop.time(), on_delivery)
        if source.group is not None and loop.time() - self._pin.answered_at > self._pinned_ttl_s:
            self._lose_pin("no answer from the hub")

    def _answered(self, source: PullSource) -> None:
        if not self.subscribed.is_set():
            log.info("Suscrito / subscribed: hub consumer %s/%s", source.stream, source.consumer)
            self.subscribed.set()

    def _status(self, source: PullSource, status: str, now: float) -> None:
        """A pull request's end: 408 expired, 404 nothing, 409 the server cut it short, 423
        another process holds the pin."""
        self._answered(source)
        if source.group is None:
            return
        if status == _PIN_MISMATCH:
            self._lose_pin("another process holds the pin")
        elif self._pin.id is not None:
            self._pin.answered_at = now

    def _message(
        self, source: PullSource, msg: Msg, now: float, on_delivery: DeliveryHandler
    ) -> None:
        self._answered(source)
        headers = msg.headers or {}
        if source.group is not None and PIN_HEADER in headers:
            if self._pin.id != headers[PIN_HEADER]:
                log.info(
                    "Este proceso tiene el consumidor %s / this process holds consumer %s",
                    source.consumer,
                    source.consumer,
                )
            self._pin = _Pin(headers[PIN_HEADER], now)
            self.pinned.set()
        metadata = msg.metadata
        if metadata.num_delivered is not None and metadata.num_delivered > 1:
            self.redelivered += 1
        delivery = self._delivery(msg)
        if delivery is None:  # a heartbeat, or nothing of the contract: nothing to hand on
            self._link.submit(self._publish(msg.reply, _ACK))
            return
        self.delivered += 1
        on_delivery(delivery)

    def _delivery(self, msg: Msg) -> Delivery | None:
        topic = topic_of(msg.subject)
        if topic is None:
            return None
        payload = msg.data
        if MARKER_HEADER in (msg.headers or {}):
            farm, agent, _ = parse_topic(topic)
            when = msg.metadata.timestamp
            offline = AgentStatus(
                v=1,
                farm=farm,
                agent=agent,
                state="offline",
                ts=int(when.timestamp() * 1000) if when is not None else None,
            )
            payload = encode_status(offline)
        with self._lock:
            mid = self._next_mid
            self._next_mid += 1
            self._unacked[mid] = msg.reply
        return Delivery(mid=mid, qos=1, topic=topic, payload=payload)

    def _holds_pin(self) -> bool:
        return self.pinned.is_set()

    def _lose_pin(self, why: str) -> None:
        if self._pin.id is not None or self.pinned.is_set():
            log.warning("Consumidor fijado perdido / pin lost: %s", why)
        self._pin = _Pin()
        self.pinned.clear()
