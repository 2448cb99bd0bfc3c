"""The edge agent on the hub (``transport = "jetstream"``, docs/scale-out.md): the same reader
threads, committer and outbox as ``EdgeAgent``, with the hub uplink instead of the MQTT one and
its presence in the hub's key-value bucket instead of a retained status and a last will.

Presence: the agent puts its ``AgentStatus`` (online, backlog, counters) to its key in
``farmwatch_presence`` every ``status_interval_s`` (the ``nats_presence_interval_s`` setting)
and when it connects, and ``offline`` when it
stops cleanly. The bucket ages a key out after its TTL (``farmwatch-hub apply
--presence-ttl-s``, above the agent's interval) and places a marker that the collector writes
as ``offline`` and the alerting service reads as the agent going silent: the last will, kept
by the cluster instead of one broker.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import sqlite3
import threading
from collections.abc import Sequence

from edge.batching import payload_limit
from edge.clock_guard import ClockGuard
from edge.committer import ReadingCommitter
from edge.drivers.poller import BusPoller
from edge.lorawan.source import LorawanReader
from edge.mcu_link import McuLink
from edge.outbox import Outbox
from edge.serial_source import SerialLineSource
from edge.uplink_jetstream import HubEventQueue, JetStreamUplink, Refused
from edge.urgency import Urgency
from farmwatch_shared.clock import Clock
from farmwatch_shared.contract import AgentStatus, encode_status
from farmwatch_shared.farm.model import SensorConfig
from farmwatch_shared.hub.endpoint import NatsEndpoint
from farmwatch_shared.hub.layout import MSG_ID_HEADER, presence_subject
from farmwatch_shared.hub.link import NatsLink
from farmwatch_shared.problems import ProblemLog
from farmwatch_shared.supervisor import Supervisor
from farmwatch_shared.version import VERSION

log = logging.getLogger(__name__)


class LinkPublisher:
    """JetStream publishes through a ``NatsLink`` (the uplink's ``HubPublisher``)."""

    def __init__(self, link: NatsLink, ack_timeout_s: float) -> None:
        self._link = link
        self._timeout_s = ack_timeout_s

    @property
    def connected(self) -> bool:
        """Connected to a node now."""
        return self._link.connected

    def publish(
        self, subject: str, payload: bytes, msg_id: str | None
    ) -> concurrent.futures.Future[bool]:
        """Publish and wait (on the link's thread) for the stream's acknowledgement."""
        return self._link.submit(self._publish(subject, payload, msg_id))

    async def _publish(self, subject: str, payload: bytes, msg_id: str | None) -> bool:
        headers = {MSG_ID_HEADER: msg_id} if msg_id is not None else None
        ack = await self._link.client.jetstream().publish(
            subject, payload, timeout=self._timeout_s, headers=headers
        )
        return bool(ack.duplicate)


class HubEdgeAgent:
    """Reads a farm's microcontroller and field buses and publishes the readings to the hub."""

    def __init__(
        self,
        *,
        farm: str,
        agent: str,
        sensors: Sequence[SensorConfig],
        outbox: Outbox,
        source: SerialLineSource | None,
        endpoint: NatsEndpoint,
        clock: Clock,
        problems: ProblemLog,
        committer: ReadingCommitter,
        clock_guard: ClockGuard,
        boot_id: str,
        batch_max_readings: int,
        batch_max_age_s: float,
        compress: bool,
        inflight_window: int,
        max_packet_bytes: int,
        ack_timeout_s: float,
        status_interval_s: float,
        payload_version: int,
        urgency: Urgency,
        pollers: Sequence[BusPoller] = (),
        lorawan: LorawanReader | None = None,
    ) -> None:
        self.farm = farm
        self.agent = agent
        self._outbox = outbox
        self._source = source
        self._clock = clock
        self._problems = problems
        self._status_interval_s = status_interval_s
        self._presence_subject = presence_subject(farm, agent)
        self._wake = threading.Event()
        self._status_due = threading.Event()
        self._events: HubEventQueue = queue.SimpleQueue()
        self.clock_guard = clock_guard
        self._boot_id = boot_id
        self._needs_clock_correction = True
        self.mcu_link = McuLink(
            [s for s in sensors if s.source is None], outbox, clock, problems, committer
        )
        self._pollers = tuple(pollers)
        self._lorawan = lorawan
        self._supervisor: Supervisor | None = None
        self._presence: concurrent.futures.Future[bool] | None = None
        self.link = NatsLink(endpoint, on_refused=self._on_refused, on_connected=self._connected)
        self.publisher = LinkPublisher(self.link, ack_timeout_s)
        self.uplink = JetStreamUplink(
            farm=farm,
            agent=agent,
            outbox=outbox,
            publisher=self.publisher,
            events=self._events,
            wake=self._wake.set,
            clock=clock,
            problems=problems,
            batch_max_readings=batch_max_readings,
            batch_max_age_s=batch_max_age_s,
            compress=compress,
            window=inflight_window,
            payload_limit=payload_limit(max_packet_bytes),
            payload_version=payload_version,
            urgency=urgency,
        )

    # link thread: only queue events for the uplink thread
    def _on_refused(self, subject: str) -> None:
        if subject == self._presence_subject.lower():
            self._problems.report(
                "presence_refused",
                f"el hub rechazó la presencia en {self._presence_subject} (permisos) / the hub "
                f"refused the presence put to {self._presence_subject} (the user's permissions)",
            )
            return
        self._events.put(Refused(subject))
        self._wake.set()

    def _connected(self) -> None:
        self._status_due.set()
        self._wake.set()

    def close(self) -> None:
        """Release what construction opened, for an agent that will not run (the buses)."""
        for poller in self._pollers:
            poller.close()

    def status(self, state: str = "online") -> AgentStatus:
        """The status (presence) this agent reports now."""
        return AgentStatus(
            v=1,
            farm=self.farm,
            agent=self.agent,
            state="online" if state == "online" else "offline",
            ts=self._clock.now_ms(),
            version=VERSION,
            outbox_backlog=self._outbox.backlog(),
            dropped_total=self._outbox.dropped_total(),
            rejected_lines=self._problems.total(),
            clock_synced=self.clock_guard.trusted(),
            devices=() if self._lorawan is None else self._lorawan.health(),
        )

    def run(self, stop: threading.Event) -> str | None:
        """Run until ``stop`` is set, then put the offline presence and disconnect; as
        ``EdgeAgent.run`` (one supervisor: a worker that dies stops the agent, its name and
        reason returned)."""
        supervisor = Supervisor("farmwatch-edge", stop, log)
        self._supervisor = supervisor
        self.link.start()
        if self._source is not None:
            supervisor.start("serial", self._read)
        for poller in self._pollers:
            supervisor.start(f"bus-{poller.bus.id}", poller.run)
        if self._lorawan is not None:
            supervisor.start("lorawan", self._lorawan.run)
        supervisor.start("uplink", self._uplink)
        while not stop.wait(0.5):
            pass
        supervisor.join(10.0)
        self._put_final_presence()
        self.link.stop()
        up = self.uplink
        log.info(
            "hub uplink: batches=%d stored=%d duplicates=%d refusals=%d backlog=%d",
            up.messages_sent,
            up.readings_committed,
            up.duplicates,
            up.refusals,
            self._outbox.backlog(),
        )
        return supervisor.failed

    def alive(self) -> bool:
        """Whether every worker of a running agent is alive (what "online" means)."""
        return self._supervisor is not None and self._supervisor.alive()

    def _uplink(self, stop: threading.Event) -> None:
        next_status = self._clock.monotonic() + self._status_interval_s
        while not stop.is_set():
            self._release_held_readings()
            progressed = self.uplink.pump()
            now = self._clock.monotonic()
            if self.link.connected and (self._status_due.is_set() or now >= next_status):
                self._status_due.clear()
                self._put_presence(self.status("online" if self.alive() else "offline"))
                next_status = now + self._status_interval_s
            if not progressed:
                self._wake.wait(0.05)
                self._wake.clear()
        if self._supervisor is not None and self._supervisor.failed is None:
            self._drain(timeout_s=2.0)

    def _release_held_readings(self) -> None:
        if not self.clock_guard.trusted():
            self._needs_clock_correction = True
            return
        if not self._needs_clock_correction:
            return
        self._needs_clock_correction = False
        corrected, stale = self._outbox.correct_clock(
            self._clock.now_ms(), int(self._clock.monotonic() * 1000), self._boot_id
        )
        if stale:
            self._problems.report(
                "clock_uncorrectable",
                f"{stale} lecturas de un arranque anterior sin hora válida, en cuarentena / "
                f"readings from an earlier boot without a valid time, quarantined",
            )
        if corrected:
            log.info(
                "Hora corregida de %d lecturas retenidas / re-timed %d held readings",
                corrected,
                corrected,
            )
            self.uplink.rewind()

    def _read(self, stop: threading.Event) -> None:
        assert self._source is not None
        for item in self._source.lines(stop):
            reply = self.mcu_link.handle(item)
            if reply is not None:
                self._source.send(reply)
                self._wake.set()

    def _drain(self, timeout_s: float) -> None:
        deadline = self._clock.monotonic() + timeout_s
        while self.uplink.inflight and self._clock.monotonic() < deadline:
            if not self.uplink.pump():
                self._wake.wait(0.05)
                self._wake.clear()

    def _put_presence(self, status: AgentStatus) -> None:
        if self._presence is not None and not self._presence.done():
            return  # the previous put still waits for its acknowledgement
        self._presence = self.publisher.publish(self._presence_subject, encode_status(status), None)
        self._presence.add_done_callback(self._presence_done)

    def _presence_done(self, future: concurrent.futures.Future[bool]) -> None:
        exc = future.exception()
        if exc is not None:
            self._problems.report(
                "presence_not_stored", f"presencia sin confirmar / presence not stored: {exc}"
            )

    def _put_final_presence(self) -> None:
        if not self.link.connected:
            return  # the bucket's TTL says offline
        try:
            status = self.status("offline")
        except sqlite3.Error as exc:  # the outbox that stopped the agent cannot say its backlog
            log.warning("Estado sin contadores / status without counters: %s", exc)
            status = AgentStatus(v=1, farm=self.farm, agent=self.agent, state="offline")
        future = self.publisher.publish(self._presence_subject, encode_status(status), None)
        try:
            future.result(timeout=2.0)
        except Exception as exc:  # noqa: BLE001 - stopping anyway: the TTL says offline later
            log.warning("Presencia final / final presence: %s", exc)
