"""The alerting service: its own MQTT consumer (own client id, QoS 1, persistent, acknowledging
each message only after its readings are committed), the rule engine, and the SMS delivery loop.

Exactly one process sends for a set of farms: farms are split among instances by
:func:`owns_farm` (deterministic), and a ``SenderGate`` picks the one process of a set that
sends: on MQTT processes sharing one state database take a lease in it before they subscribe (a
standby waits and takes over the same MQTT session when the lease expires); on the hub the
gate is the pinned consumer (``collector.alerts.jetstream``). See docs/alerts.md and
docs/scale-out.md.
"""

from __future__ import annotations

import logging
import queue
import threading
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from collector.alerts.api import AlertApi, ApiConfig, ApiServer
from collector.alerts.channels import ChannelError, SmsChannel
from collector.alerts.commands import CommandHandler
from collector.alerts.dispatch import Dispatcher
from collector.alerts.engine import AlertEngine
from collector.alerts.gate import SenderGate
from collector.alerts.history import HistoryExporter
from collector.alerts.intake import MessageIntake
from collector.alerts.modem import GsmModem, IncomingSms, UnreadableSms
from collector.alerts.modem_health import ModemHealth
from collector.alerts.modem_status import ModemStatus
from collector.alerts.privacy import mask_phone
from collector.alerts.store import AlertStore
from farmwatch_shared.clock import Clock
from farmwatch_shared.contract import (
    READINGS_SUBSCRIPTION,
    STATUS_SUBSCRIPTION,
)
from farmwatch_shared.farm.model import FarmConfig
from farmwatch_shared.influx import PointWriter
from farmwatch_shared.mqtt import Consumer, Delivery, MqttConsumer, MqttEndpoint
from farmwatch_shared.problems import ProblemLog
from farmwatch_shared.supervisor import Supervisor

log = logging.getLogger(__name__)


def owns_farm(farm_id: str, index: int, count: int) -> bool:
    """Whether instance ``index`` of ``count`` evaluates and sends for ``farm_id``."""
    return zlib.crc32(farm_id.encode()) % count == index


def make_consumer(endpoint: MqttEndpoint, session_expiry_s: int = 7 * 24 * 3600) -> MqttConsumer:
    """The alerting service's persistent MQTT session on every farm's readings and statuses."""
    return MqttConsumer(
        endpoint,
        topic_filters=[READINGS_SUBSCRIPTION, STATUS_SUBSCRIPTION],
        session_expiry_s=session_expiry_s,
        receive_maximum=200,
        max_inflight=50,
    )


@dataclass
class ServiceTiming:
    """Loop periods (tests shorten them)."""

    tick_s: float = 1.0
    idle_s: float = 0.02
    inbox_poll_s: float = 0.5
    inbox_sweep_s: float = 300.0
    export_s: float = 5.0
    modem_health_s: float = 300.0


class AlertService:
    """Wires MQTT, engine, outbox dispatcher, two-way SMS, history export and the HTTP API."""

    def __init__(
        self,
        *,
        farms: Mapping[str, FarmConfig],
        state_db: Path,
        consumer: Consumer,
        channels: Sequence[SmsChannel],
        clock: Clock,
        problems: ProblemLog,
        boot_id: str,
        modem: GsmModem | None = None,
        history_writer: PointWriter | None = None,
        gate: SenderGate,
        holder: str = "alerts",
        retry_initial_s: float = 30.0,
        retry_max_s: float = 900.0,
        timing: ServiceTiming | None = None,
        api: ApiConfig | None = None,
    ) -> None:
        self._farms = dict(farms)
        self._state_db = state_db
        self._channels = list(channels)
        self._modem = modem
        self._clock = clock
        self._problems = problems
        self._boot_id = boot_id
        self._history_writer = history_writer
        self._holder = holder
        self._gate = gate
        self._retry = (retry_initial_s, retry_max_s)
        self.timing = timing or ServiceTiming()
        self._api = api
        self._inbox: queue.SimpleQueue[Delivery] = queue.SimpleQueue()
        self._wake = threading.Event()
        self.leader = threading.Event()
        """Set while this process holds the sender's turn (the gate) and is subscribed."""
        self.messages_processed = 0
        self.consumer = consumer

    @property
    def modem_status(self) -> ModemStatus | None:
        """The modem's latest registration and signal (None without a modem)."""
        return self._modem.status if self._modem is not None else None

    @property
    def subscribed(self) -> threading.Event:
        """Set once the broker accepted the subscriptions (on the current connection)."""
        return self.consumer.subscribed

    # -- threads ----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> str | None:
        """Run until ``stop`` is set: wait for the gate, then evaluate and deliver. The engine
        and delivery loops run under one :class:`Supervisor`: if either dies, the other stops
        too and the name and reason of the dead worker are returned (None after a clean stop);
        the CLI then exits with ``EX_SOFTWARE``."""
        # create the database before two threads open it
        AlertStore(self._state_db, self._clock).close()
        supervisor = Supervisor("farmwatch-alerts", stop, log)
        supervisor.start("alerts-engine", self._engine_loop)
        supervisor.start("alerts-delivery", self._delivery_loop)
        if self._api is not None:
            supervisor.start("alerts-api", self._api_loop)
        stop.wait()
        supervisor.join(30.0)
        self._gate.release()  # only now, with the modem closed, may a standby take over
        return supervisor.failed

    def _engine_loop(self, stop: threading.Event) -> None:
        store = AlertStore(self._state_db, self._clock)
        try:
            if not self._gate.acquire(store, stop, lambda: self.consumer.start(self._inbox.put)):
                return
            log.info("Este proceso envía las alertas / this process sends the alerts")
            engine = AlertEngine(store, self._farms, self._clock, self._problems, self._boot_id)
            intake = MessageIntake(engine, store, self._farms, self._clock, self._problems)
            self.leader.set()
            next_tick = 0.0
            while not stop.is_set():
                try:
                    delivery: Delivery | None = self._inbox.get(timeout=self.timing.idle_s)
                except queue.Empty:
                    delivery = None
                if delivery is not None:
                    intake.handle(delivery)  # never raises for the message's own sake
                    self.consumer.ack(delivery)
                    self.messages_processed += 1
                    self._wake.set()
                now = self._clock.monotonic()
                if now >= next_tick:
                    next_tick = now + self.timing.tick_s
                    if not self._gate.renew(store):
                        raise LeaseLostError(
                            "Perdí el turno de envío / lost the sender lease: stopping"
                        )
                    engine.tick()
                    self._wake.set()
        finally:
            self.leader.clear()
            self.consumer.stop()
            store.close()

    def _delivery_loop(self, stop: threading.Event) -> None:
        store = AlertStore(self._state_db, self._clock)
        dispatcher = Dispatcher(
            store,
            self._channels,
            self._clock,
            self._problems,
            retry_initial_s=self._retry[0],
            retry_max_s=self._retry[1],
        )
        commands = CommandHandler(store, self._farms, self._clock, self._problems)
        exporter = (
            HistoryExporter(store, self._history_writer, self._problems)
            if self._history_writer is not None
            else None
        )
        health = (
            ModemHealth(self._modem, self._history_writer, self._problems, self._holder)
            if self._modem is not None
            else None
        )
        next_inbox = next_sweep = next_export = next_health = 0.0
        try:
            while not stop.is_set():
                self._wake.wait(self.timing.idle_s * 5)
                self._wake.clear()
                if not self.leader.is_set():
                    continue
                dispatcher.send_due()
                now = self._clock.monotonic()
                if self._modem is not None and now >= next_inbox:
                    next_inbox = now + self.timing.inbox_poll_s
                    sweep = now >= next_sweep
                    if sweep:
                        next_sweep = now + self.timing.inbox_sweep_s
                    self._poll_modem(store, sweep)
                if health is not None and now >= next_health:
                    next_health = now + self.timing.modem_health_s
                    health.check()
                if commands.handle_pending():
                    dispatcher.send_due()
                if exporter is not None and now >= next_export:
                    next_export = now + self.timing.export_s
                    exporter.export()
            if exporter is not None:
                exporter.export()
        finally:
            if self._modem is not None:
                self._modem.close()
            store.close()

    def _api_loop(self, stop: threading.Event) -> None:
        """The HTTP API (docs/alerts.md): serves standby answers (503) while another process
        holds the lease, incidents and acknowledgements while this one does."""
        assert self._api is not None
        api = AlertApi(
            self._farms,
            lambda: AlertStore(self._state_db, self._clock),
            self._clock,
            self._problems,
            self._api.token,
            serving=self.leader.is_set,
        )
        server = ApiServer(self._api, api, self._problems)
        log.info(
            "API en / listening on %s://%s:%d",
            "https" if self._api.tls is not None else "http",
            self._api.host,
            server.port,
        )
        server.serve(stop)

    def _poll_modem(self, store: AlertStore, sweep: bool) -> None:
        assert self._modem is not None

        def accept(sms: IncomingSms) -> None:
            # an alphanumeric sender ID is text anybody can set: never a command
            outcome = None if sms.numeric_sender else "ignored_not_a_number"
            store.add_incoming(sms.sender, sms.text, sms.timestamp, self._clock.now_ms(), outcome)
            if outcome is not None:
                self._problems.report(
                    "sms_from_sender_id",
                    f"SMS de un remitente alfanumérico ignorado / from a sender ID ignored: "
                    f"{mask_phone(sms.sender)}",
                )

        def reject(sms: UnreadableSms) -> None:
            store.quarantine(
                "sms",
                sms.location,
                sms.pdu.encode("latin-1", "replace"),
                "unreadable_sms",
                sms.reason,
                self._clock.now_ms(),
            )
            self._problems.report(
                "unreadable_sms", f"SMS en cuarentena / quarantined: {sms.reason}"
            )

        try:
            self._modem.poll_incoming(sweep=sweep, accept=accept, reject=reject)
        except ChannelError as exc:
            self._problems.report(f"modem_inbox_{exc.cause}", str(exc))


class LeaseLostError(RuntimeError):
    """Another process holds the sender lease now: this one must stop sending."""
