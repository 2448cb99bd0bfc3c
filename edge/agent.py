"""The edge agent: microcontroller lines (reader thread), field buses (a thread each) and LoRaWAN
uplinks (a thread reading the network server's broker) → outbox → MQTT (uplink thread), every
thread under one supervisor: no thread dies alone."""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from collections.abc import Sequence

import paho.mqtt.client as paho

from edge.batching import payload_limit
from edge.clock_guard import ClockGuard
from edge.committer import ReadingCommitter
from edge.drivers.poller import BusPoller
from edge.lorawan.source import LorawanReader
from edge.mcu_link import McuLink
from edge.outbox import Outbox
from edge.serial_source import SerialLineSource
from edge.uplink import Confirmation, Connected, EventQueue, Puback, Uplink
from edge.urgency import Urgency
from farmwatch_shared.clock import Clock
from farmwatch_shared.contract import AgentStatus, committed_topic, encode_status, status_topic
from farmwatch_shared.farm.model import SensorConfig
from farmwatch_shared.mqtt import Delivery, MqttEndpoint, MqttSession, Will
from farmwatch_shared.problems import ProblemLog
from farmwatch_shared.supervisor import Supervisor
from farmwatch_shared.version import VERSION

log = logging.getLogger(__name__)


class EdgeAgent:
    """Reads a farm's microcontroller and field buses and publishes the readings durably."""

    def __init__(
        self,
        *,
        farm: str,
        agent: str,
        sensors: Sequence[SensorConfig],
        outbox: Outbox,
        source: SerialLineSource | None,
        endpoint: MqttEndpoint,
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
        commit_timeout_s: float,
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
        self._status_topic = status_topic(farm, agent)
        self._wake = threading.Event()
        self._status_due = threading.Event()
        self._events: EventQueue = queue.SimpleQueue()
        self._committed_topic = committed_topic(farm, agent)
        self.clock_guard = clock_guard
        self._boot_id = boot_id
        self._needs_clock_correction = True
        self.mcu_link = McuLink(
            [s for s in sensors if s.source is None], outbox, clock, problems, committer
        )
        self._pollers = tuple(pollers)
        self._lorawan = lorawan
        offline = AgentStatus(v=1, farm=farm, agent=agent, state="offline", version=VERSION)
        self._will_payload = encode_status(offline)
        self._supervisor: Supervisor | None = None
        self.session = MqttSession(
            endpoint,
            clean_start=False,
            session_expiry_s=7 * 24 * 3600,
            max_inflight=inflight_window + 2,
            will=Will(self._status_topic, self._will_payload),
            on_connected=self._on_connected,
            on_message=self._on_message,
            on_published=self._on_published,
        )
        self.uplink = Uplink(
            farm=farm,
            agent=agent,
            outbox=outbox,
            publisher=self.session,
            events=self._events,
            clock=clock,
            problems=problems,
            batch_max_readings=batch_max_readings,
            batch_max_age_s=batch_max_age_s,
            compress=compress,
            window=inflight_window,
            payload_limit=payload_limit(max_packet_bytes),
            commit_timeout_s=commit_timeout_s,
            payload_version=payload_version,
            urgency=urgency,
        )

    # MQTT network thread: only queue events for the uplink thread
    def _on_connected(self, session: MqttSession) -> None:
        if not session.session_present:  # a kept session keeps its subscription
            session.subscribe([self._committed_topic])  # the collector's confirmations, QoS 1
        self._events.put(Connected(session.session_present))
        self._status_due.set()
        self._wake.set()

    def _on_message(self, delivery: Delivery) -> None:
        self._events.put(Confirmation(delivery.topic, delivery.payload))
        self._wake.set()

    def _on_published(self, mid: int, delivered: bool) -> None:
        self._events.put(Puback(mid, delivered))
        self._wake.set()

    def close(self) -> None:
        """Release what construction opened, for an agent that will not run (the buses)."""
        for poller in self._pollers:
            poller.close()

    def status(self, state: str = "online") -> AgentStatus:
        """The status this agent reports now."""
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
        """Run until ``stop`` is set, then publish the offline status and disconnect. Every
        worker (serial reader, each bus poller, the uplink) runs under one ``Supervisor``: if
        one dies, the agent stops; return its name and reason (None after a clean stop)."""
        supervisor = Supervisor("farmwatch-edge", stop, log)
        self._supervisor = supervisor
        self.session.start()
        if self._source is not None:
            supervisor.start("serial", self._read)
        for poller in self._pollers:
            supervisor.start(f"bus-{poller.bus.id}", poller.run)  # closes its bus when it ends
        if self._lorawan is not None:
            supervisor.start("lorawan", self._lorawan.run)  # disconnects when it ends
        supervisor.start("uplink", self._uplink)
        while not stop.wait(0.5):
            pass
        supervisor.join(10.0)
        self._publish_final_status()
        self.session.stop()
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
            if self.session.connected and (self._status_due.is_set() or now >= next_status):
                self._status_due.clear()
                self._publish_status("online" if self.alive() else "offline")
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

    def _publish_status(self, state: str) -> None:
        self._publish_status_payload(encode_status(self.status(state)))

    def _publish_final_status(self) -> None:
        if not self.session.connected:
            return  # the broker publishes the last will
        try:
            payload = encode_status(self.status("offline"))
        except sqlite3.Error as exc:  # the outbox that stopped the agent cannot say its backlog
            log.warning("Estado sin contadores / status without counters: %s", exc)
            payload = self._will_payload
        self._publish_status_payload(payload)

    def _publish_status_payload(self, payload: bytes) -> None:
        info = self.session.publish(self._status_topic, payload, qos=1, retain=True)
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
            self._problems.report("status_not_queued", f"paho rc={info.rc}")
