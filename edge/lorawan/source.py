"""The LoRaWAN source (``LorawanReader``): the network server's MQTT integration → the committer
→ acknowledged.

One persistent MQTT session (QoS 1, manual acknowledgement) to the network server's broker
delivers its events; one worker thread handles them in order. An uplink is judged against its
device's kept mark (``sequence``), decoded by its device's codec (``codecs``), and each value a
sensor of the farm file takes from it becomes a ``RawSample`` at the uplink's network time,
committed through the agent's one ``ReadingCommitter`` (calibration, vessel geometry, refusal
of impossible values, outbox) with the device's new mark in the same transaction. Only then is
the MQTT message acknowledged: a message the agent did not commit is delivered again, and the
mark makes the repeat a no-op.

Every input that cannot be used (bad JSON or base64, an unknown device, a wrong fPort, a frame
too short or too long, a sensor's fault value) is counted by cause and quarantined with its
reason in the outbox, and acknowledged: the stream goes on. Any unforeseen error while handling
one message refuses that message (``lorawan_internal_error``); only a failure to store (the
outbox's disk) stops the worker, and with it the agent (its supervisor).
"""

from __future__ import annotations

import logging
import math
import queue
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from edge.committer import ReadingCommitter
from edge.drivers.base import RawSample
from edge.lorawan.codecs import Codec, CodecError, Decoded, Payload, codec_for
from edge.lorawan.events import (
    Address,
    DeviceStatus,
    Event,
    EventError,
    Join,
    Parser,
    Uplink,
    parser_for,
)
from edge.lorawan.sequence import DeviceMark, Verdict, dedup_key, joined, judge, owner
from edge.outbox import Outbox, StateUpdate
from farmwatch_shared.clock import Clock
from farmwatch_shared.contract import EARLIEST_TS_MS, MAX_FUTURE_MS, DeviceHealth
from farmwatch_shared.farm.model import FarmConfig, LorawanDevice, LorawanSource, SensorConfig
from farmwatch_shared.mqtt import (
    MQTT_V5,
    MQTT_V311,
    Consumer,
    Delivery,
    MqttConsumer,
    MqttEndpoint,
)
from farmwatch_shared.problems import ProblemLog

log = logging.getLogger(__name__)


def topic_filters(devices: Sequence[LorawanDevice]) -> list[str]:
    """The integration topics carrying the events of ``devices``' applications."""
    filters: list[str] = []
    for network, application in sorted({(d.network, d.application) for d in devices}):
        if network == "chirpstack":
            events = ("up", "join", "status")
            filters += [f"application/{application}/device/+/event/{e}" for e in events]
        else:
            filters += [f"v3/{application}/devices/+/{e}" for e in ("up", "join")]
    return filters


def address_of(device: LorawanDevice) -> Address:
    """How the network server names ``device`` in its topics."""
    if device.network == "chirpstack":
        assert device.dev_eui is not None  # the farm model requires it
        return Address("chirpstack", device.application, device.dev_eui)
    assert device.device_id is not None
    return Address("tts", device.application, device.device_id)


@dataclass
class _Health:
    """A device's health as last seen (the counters since the agent started, but ``lost`` and
    ``rejoins``, which are kept with its mark)."""

    last_uplink_ts: int | None = None
    fcnt: int | None = None
    rssi_dbm: float | None = None
    snr_db: float | None = None
    battery_v: float | None = None
    battery_pct: float | None = None
    margin_db: int | None = None
    lost_uplinks: int = 0
    duplicates: int = 0
    refused: int = 0
    rejoins: int = 0


@dataclass(frozen=True)
class _Device:
    config: LorawanDevice
    codec: Codec
    sensors: tuple[SensorConfig, ...]
    """The sensors fed by the device, by id: its uplinks' parts, in commit order."""

    @property
    def owner(self) -> str:
        return owner(self.config.id)


class LorawanReader:
    """Reads LoRaWAN devices through their network server's MQTT integration."""

    def __init__(
        self,
        *,
        devices: Sequence[LorawanDevice],
        sensors: Sequence[SensorConfig],
        consumer: Consumer,
        committer: ReadingCommitter,
        outbox: Outbox,
        clock: Clock,
        problems: ProblemLog,
        clock_trusted: Callable[[], bool],
    ) -> None:
        networks = {d.network for d in devices}
        if len(networks) != 1:
            raise ValueError(f"one network server per source, not {sorted(networks)}")
        self._parse: Parser = parser_for(devices[0].network)
        self._consumer = consumer
        self._committer = committer
        self._outbox = outbox
        self._clock = clock
        self._clock_trusted = clock_trusted
        self._problems = problems
        self._devices: dict[Address, _Device] = {}
        for device in devices:
            fed = sorted(
                (
                    s
                    for s in sensors
                    if isinstance(s.source, LorawanSource) and s.source.lorawan == device.id
                ),
                key=lambda s: s.id,
            )
            codec = codec_for(device.codec, device.object_fields)
            self._devices[address_of(device)] = _Device(device, codec, tuple(fed))
        self._inbox: queue.SimpleQueue[Delivery] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._health: dict[str, _Health] = {}
        for known in self._devices.values():
            mark = self._mark(known)
            self._health[known.config.id] = _Health(lost_uplinks=mark.lost, rejoins=mark.rejoins)
        self._warned_qos0 = False
        self.handled = 0
        """Messages handled (and acknowledged) since start."""

    @property
    def consumer(self) -> Consumer:
        """The session to the network server's broker."""
        return self._consumer

    # the worker ---------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Connect, then handle every event in order, acknowledging each once it is committed,
        until ``stop`` is set (what was not handled is delivered again to the next session)."""
        self._consumer.start(self._inbox.put)
        try:
            while not stop.is_set():
                try:
                    delivery = self._inbox.get(timeout=0.2)
                except queue.Empty:
                    continue
                self.handle(delivery)
                self._consumer.ack(delivery)
                self.handled += 1
        finally:
            self._consumer.stop()

    def handle(self, delivery: Delivery) -> None:
        """Commit (or refuse) what one MQTT message says; raise only when the outbox fails."""
        if delivery.qos == 0 and not self._warned_qos0:
            self._warned_qos0 = True
            log.warning(
                "El servidor de red entrega con QoS 0: lo que publique mientras el agente esté "
                "desconectado se pierde (se cuentan los huecos del contador) / the network "
                "server delivers at QoS 0: what it publishes while the agent is disconnected "
                "is lost (gaps in the frame counter are counted)"
            )
        try:
            self._dispatch(delivery)
        except (sqlite3.Error, OSError):
            raise  # the outbox's disk: not this message's fault, the agent stops
        except Exception as exc:  # noqa: BLE001 - anything else is this one message's problem
            self._refuse(
                None, "lorawan_internal_error", f"{type(exc).__name__}: {exc}", delivery, None
            )

    def _dispatch(self, delivery: Delivery) -> None:
        try:
            event = self._parse(delivery.topic, delivery.payload)
        except EventError as exc:
            self._refuse(None, f"lorawan_{exc.cause}", exc.detail, delivery, None)
            return
        device = self._devices.get(event.address)
        if device is None:
            detail = f"{event.address.application}/{event.address.device}"
            self._refuse(None, "lorawan_unknown_device", detail, delivery, None)
            return
        self._event(device, event, delivery)

    def _event(self, device: _Device, event: Event, delivery: Delivery) -> None:
        if isinstance(event, Uplink):
            self._uplink(device, event, delivery)
        elif isinstance(event, Join):
            self._join(device, event)
        else:
            self._status(device, event)

    # events -------------------------------------------------------------------------------

    def _uplink(self, device: _Device, uplink: Uplink, delivery: Delivery) -> None:
        if uplink.simulated:
            detail = "an uplink simulated in the console"
            self._refuse(device, "lorawan_simulated", detail, delivery, None)
            return
        time_ms, own_time = self._time(uplink)
        verdict = judge(
            self._mark(device),
            fcnt=uplink.fcnt,
            time_ms=time_ms,
            own_time=own_time,
            dedup=dedup_key(uplink.dedup_id),
            parts=max(1, len(device.sensors)),
        )
        if verdict.kind == "duplicate":
            with self._lock:
                self._health[device.config.id].duplicates += 1
            return
        self._seen(device, uplink, time_ms, verdict)
        whole = verdict.after(max(1, len(device.sensors)))
        try:
            decoded = device.codec.decode(Payload(uplink.fport, uplink.data, uplink.obj))
        except CodecError as exc:
            self._refuse(device, f"lorawan_{exc.cause}", exc.detail, delivery, whole)
            return
        self._battery(device, decoded)
        if decoded.info or not device.sensors:
            self._outbox.set_state(StateUpdate(source=whole.state(device.config.id)))
            return
        self._commit_parts(device, decoded, verdict, time_ms, own_time)

    def _commit_parts(
        self, device: _Device, decoded: Decoded, verdict: Verdict, time_ms: int, own_time: bool
    ) -> None:
        mono_ms = int(self._clock.monotonic() * 1000)
        for index, sensor in enumerate(device.sensors):
            if index < verdict.skip:
                continue  # committed before the agent stopped: this is the same uplink again
            state = verdict.after(index + 1).state(device.config.id)
            assert isinstance(sensor.source, LorawanSource)
            point = sensor.source.point
            value = decoded.values.get(point)
            fault = decoded.faults.get(point)
            if fault is not None or value is None:
                cause = f"lorawan_{fault or 'point_missing'}"
                detail = f"{sensor.id} ({point}) fCnt {verdict.mark.fcnt}"
                self._refuse(device, cause, detail, None, verdict.after(index + 1))
                continue
            sample = RawSample(sensor.id, value, time_ms, mono_ms, own_time=own_time)
            if self._committer.commit(sensor, sample, source_state=state) is None:
                with self._lock:
                    self._health[device.config.id].refused += 1

    def _join(self, device: _Device, join: Join) -> None:
        when = join.times[0] if join.times else self._clock.now_ms()
        mark = joined(self._mark(device), when)
        if mark is None:
            return
        log.info("LoRaWAN: %s se unió de nuevo / rejoined", device.config.id)
        self._outbox.set_state(StateUpdate(source=mark.state(device.config.id)))

    def _status(self, device: _Device, status: DeviceStatus) -> None:
        with self._lock:
            health = self._health[device.config.id]
            if status.battery_pct is not None and math.isfinite(status.battery_pct):
                health.battery_pct = status.battery_pct
            if status.margin_db is not None:
                health.margin_db = status.margin_db

    # helpers ------------------------------------------------------------------------------

    def _mark(self, device: _Device) -> DeviceMark:
        return DeviceMark.from_state(self._outbox.source_state(device.owner))

    def _time(self, uplink: Uplink) -> tuple[int, bool]:
        """The uplink's network time (and True), or the agent's when it gives no plausible
        one (a gateway clock in 1970). "Ahead of now" is judged only on a trusted agent clock:
        while the Pi's own clock is wrong, the network's is the better one."""
        now = self._clock.now_ms()
        ceiling = now + MAX_FUTURE_MS if self._clock_trusted() else math.inf
        for candidate in uplink.times:
            if EARLIEST_TS_MS <= candidate <= ceiling:
                return candidate, True
        if uplink.times:
            self._problems.report(
                "lorawan_time_implausible",
                f"{uplink.address.device}: {list(uplink.times)}, using the agent's clock",
            )
        return now, False

    def _seen(self, device: _Device, uplink: Uplink, time_ms: int, verdict: Verdict) -> None:
        if verdict.rejoined:
            log.info(
                "LoRaWAN: %s empezó una nueva sesión (fCnt %d) / started a new session",
                device.config.id,
                uplink.fcnt,
            )
        with self._lock:
            health = self._health[device.config.id]
            health.last_uplink_ts = time_ms
            health.fcnt = uplink.fcnt
            health.rssi_dbm = uplink.rssi_dbm
            health.snr_db = uplink.snr_db
            health.lost_uplinks = verdict.mark.lost
            health.rejoins = verdict.mark.rejoins

    def _battery(self, device: _Device, decoded: Decoded) -> None:
        with self._lock:
            health = self._health[device.config.id]
            if decoded.battery_v is not None:
                health.battery_v = decoded.battery_v
            if decoded.battery_pct is not None:
                health.battery_pct = decoded.battery_pct

    def _refuse(
        self,
        device: _Device | None,
        cause: str,
        detail: str,
        delivery: Delivery | None,
        mark: DeviceMark | None,
    ) -> None:
        """Count, log and quarantine a refused input (with the device's new mark, when it is
        an uplink that counts in the device's sequence)."""
        where = "" if delivery is None else f"{delivery.topic[:120]}: "
        payload = "" if delivery is None else f" payload {delivery.payload[:120]!r}"
        name = "" if device is None else f"{device.config.id}: "
        state = None
        if device is not None:
            with self._lock:
                self._health[device.config.id].refused += 1
            if mark is not None:
                state = StateUpdate(source=mark.state(device.config.id))
        self._committer.refuse(cause, f"{where}{name}{detail}{payload}", state)

    # health -------------------------------------------------------------------------------

    def health(self) -> tuple[DeviceHealth, ...]:
        """Each device's health now, for the agent's status."""
        with self._lock:
            return tuple(
                DeviceHealth(
                    id=device_id,
                    last_uplink_ts=h.last_uplink_ts,
                    fcnt=h.fcnt,
                    rssi_dbm=h.rssi_dbm,
                    snr_db=h.snr_db,
                    battery_v=h.battery_v,
                    battery_pct=h.battery_pct,
                    margin_db=h.margin_db,
                    lost_uplinks=h.lost_uplinks,
                    duplicates=h.duplicates,
                    refused=h.refused,
                    rejoins=h.rejoins,
                )
                for device_id, h in sorted(self._health.items())
            )


def check_devices(devices: Sequence[LorawanDevice], sensors: Sequence[SensorConfig]) -> None:
    """Raise ValueError for a device whose codec does not exist or a sensor naming a point its
    device's codec does not give (for ``--check-config``, before anything is opened)."""
    codecs: Mapping[str, Codec] = {d.id: codec_for(d.codec, d.object_fields) for d in devices}
    for sensor in sensors:
        if not isinstance(sensor.source, LorawanSource):
            continue
        codec = codecs[sensor.source.lorawan]
        if sensor.source.point not in codec.points:
            raise ValueError(
                f"sensor {sensor.id}: codec {codec.name} of LoRaWAN device "
                f"{sensor.source.lorawan} has no point {sensor.source.point!r}; it has "
                f"{', '.join(sorted(codec.points))}"
            )


def build_reader(
    *,
    farm: FarmConfig,
    agent_id: str,
    endpoint: MqttEndpoint | None,
    session_expiry_s: int,
    receive_maximum: int,
    committer: ReadingCommitter,
    outbox: Outbox,
    clock: Clock,
    problems: ProblemLog,
    clock_trusted: Callable[[], bool],
) -> LorawanReader | None:
    """The LoRaWAN source of ``agent_id``, checked (``check_devices``) and not yet connected;
    None when the agent has no LoRaWAN device or no network server broker (``endpoint``)."""
    devices = farm.lorawan_devices_of(agent_id)
    sensors = farm.sensors_of(agent_id)
    check_devices(devices, sensors)
    if not devices or endpoint is None:
        return None
    consumer = MqttConsumer(
        endpoint,
        topic_filters=topic_filters(devices),
        session_expiry_s=session_expiry_s,
        receive_maximum=receive_maximum,
        max_inflight=receive_maximum,
        protocol=MQTT_V311 if devices[0].network == "tts" else MQTT_V5,
    )
    return LorawanReader(
        devices=devices,
        sensors=sensors,
        consumer=consumer,
        committer=committer,
        outbox=outbox,
        clock=clock,
        problems=problems,
        clock_trusted=clock_trusted,
    )
