"""The edge agent: microcontroller lines (reader thread), field buses (a thread each) and LoRaWAN
uplinks (a thread reading the network server's broker) → outbox → its transport (uplink
thread), every thread under one supervisor: no thread dies alone.

The transport (``edge/transport.py``) is MQTT (``edge/transport_mqtt.py``: a retained status
and a last will) or the hub (``edge/transport_hub.py``: a presence key with a TTL); the agent
is the same on both."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Sequence

from edge.clock_guard import ClockGuard
from edge.committer import ReadingCommitter
from edge.drivers.poller import BusPoller
from edge.lorawan.source import LorawanReader
from edge.mcu_link import McuLink
from edge.outbox import Outbox
from edge.serial_source import SerialLineSource
from edge.status_schedule import StatusNews, StatusSchedule
from edge.transport import Transport
from farmwatch_shared.clock import Clock
from farmwatch_shared.contract import AgentStatus
from farmwatch_shared.farm.model import SensorConfig
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
        transport: Transport,
        clock: Clock,
        problems: ProblemLog,
        committer: ReadingCommitter,
        clock_guard: ClockGuard,
        boot_id: str,
        status_interval_s: float,
        batch_max_readings: int,
        pollers: Sequence[BusPoller] = (),
        lorawan: LorawanReader | None = None,
    ) -> None:
        self.farm = farm
        self.agent = agent
        self._outbox = outbox
        self._source = source
        self._transport = transport
        self._signals = transport.signals
        self._clock = clock
        self._problems = problems
        self._status_interval_s = status_interval_s
        self._batch_max_readings = batch_max_readings
        self.clock_guard = clock_guard
        self._boot_id = boot_id
        self._needs_clock_correction = True
        self.mcu_link = McuLink(
            [s for s in sensors if s.source is None], outbox, clock, problems, committer
        )
        self._pollers = tuple(pollers)
        self._lorawan = lorawan
        self._supervisor: Supervisor | None = None

    def close(self) -> None:
        """Release what construction opened, for an agent that will not run (the buses)."""
        for poller in self._pollers:
            poller.close()

    def status(self, state: str = "online") -> AgentStatus:
        """The status (on the hub: the presence) this agent reports now."""
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
        """Run until ``stop`` is set, then put the offline status and disconnect. Every worker
        (serial reader, each bus poller, the LoRaWAN reader, the uplink) runs under one
        ``Supervisor``: if one dies, the agent stops; return its name and reason (None after a
        clean stop)."""
        supervisor = Supervisor("farmwatch-edge", stop, log)
        self._supervisor = supervisor
        self._transport.start()
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
        self._put_final_status()
        self._transport.stop()
        summary = self._transport.summary()
        if summary is not None:
            log.info("%s", summary)
        return supervisor.failed

    def alive(self) -> bool:
        """Whether every worker of a running agent is alive (what "online" means)."""
        return self._supervisor is not None and self._supervisor.alive()

    def _uplink(self, stop: threading.Event) -> None:
        uplink, signals = self._transport.uplink, self._signals
        schedule = StatusSchedule(self._status_interval_s, self._clock.monotonic())
        batches_seen = uplink.messages_sent
        while not stop.is_set():
            self._release_held_readings()
            progressed = uplink.pump()
            if self._transport.connected:
                now = self._clock.monotonic()
                connected = signals.status_due.is_set()
                batch_went = uplink.messages_sent != batches_seen
                must = schedule.must_put(now, connected=connected)
                if must or batch_went:
                    batches_seen = uplink.messages_sent
                    self._maybe_put_status(schedule, now, must)
            if not progressed:
                signals.wake.wait(0.05)
                signals.wake.clear()
        if self._supervisor is not None and self._supervisor.failed is None:
            self._drain(timeout_s=2.0)

    def _maybe_put_status(self, schedule: StatusSchedule, now: float, must: bool) -> None:
        """Put the status if it ``must`` go, or if it has news (a batch just went)."""
        status = self.status("online" if self.alive() else "offline")
        news = StatusNews.of(status, self._batch_max_readings)
        if must or schedule.is_news(news):
            self._signals.status_due.clear()
            self._transport.put_status(status)
            schedule.put(now, news)

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
            self._transport.uplink.rewind()

    def _read(self, stop: threading.Event) -> None:
        assert self._source is not None
        for item in self._source.lines(stop):
            reply = self.mcu_link.handle(item)
            if reply is not None:
                self._source.send(reply)
                self._signals.wake.set()

    def _drain(self, timeout_s: float) -> None:
        uplink, wake = self._transport.uplink, self._signals.wake
        deadline = self._clock.monotonic() + timeout_s
        while uplink.inflight and self._clock.monotonic() < deadline:
            if not uplink.pump():
                wake.wait(0.05)
                wake.clear()

    def _put_final_status(self) -> None:
        if not self._transport.connected:
            return  # the transport's stand-in says offline (MQTT: the last will; hub: the TTL)
        try:
            status: AgentStatus | None = self.status("offline")
        except sqlite3.Error as exc:  # the outbox that stopped the agent cannot say its backlog
            log.warning("Estado sin contadores / status without counters: %s", exc)
            status = None
        self._transport.put_final_status(status)
