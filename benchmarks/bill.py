"""Benchmark 5: the farm's data bill, bytes on the wire per farm-month over TLS.

The shipped edge agent (``farmwatch-edge`` as a process, the shipped farm files, the settings of
``deploy/env/edge.env.example``: TLS on the broker's agent port with the CA file, everything
else at its default) runs against a Mosquitto with the shipped policy and the shipped TLS
listener (``deploy/mosquitto/conf.d/farmwatch.conf``, certificates made by
``deploy/mosquitto/make-tls-certs.sh``), a real collector confirming what it stored, and the
emulated microcontroller and field buses of each model farm at the farm's real sample rates
(real time: the agent's MQTT keepalive and its bus pollers run on the system's clock, so a
compressed clock would not compress them). A farm with LoRaWAN devices gets what the demo runs
(``farmwatch_local/demo_lorawan.py``): a Mosquitto of its own standing in for the gateway's
ChirpStack broker, on the farm's LAN and so off the bill, and the emulated network server
publishing each device's uplinks there every 20 minutes, real time as well. Each agent reaches
the broker through its own ``CountingProxy`` (``farmwatch_local/wire.py``): the kernel's
counters of the agent's TCP socket, its uplink only.

Method (per farm, all farms and the baselines at once):

- steady state: from 2 s after the agent's batch ``k`` reached the broker to 2 s after batch
  ``k + n``: exactly ``n`` batch periods, with their keepalives, status messages,
  acknowledgements and the collector's confirmations; scaled to a day by time;
- a link drop every ``drop_every_h`` hours: the proxy resets the connection; the cost of the
  new connection (TCP and TLS handshakes, MQTT CONNECT, resumed session, subscription, the
  status sent on connect) until 2 s after the agent's status is on the broker again, plus the
  old connection's reset, per drop;
- TCP/IP headers: 52 B per segment (IPv4 20 + TCP 20 + timestamps 12), segments as the
  kernel counted them, plus the SYN-ACK it does not count on an accepted socket;
- baseline, in the same run: a paho publisher per farm (MQTT 3.1.1, QoS 1, 60 s keepalive, TLS
  through its own proxy to a second broker of the same policy), one uncompressed JSON message
  per reading at the same sample rates, same window and the same drop.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import secrets
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from benchmarks.common import (
    COLLECTOR_USER,
    FARM_FILES,
    FARMS,
    Endpoint,
    close,
    mqtt_env,
    subscribe,
)
from edge.settings import EdgeSettings
from farmwatch_emulators.farm import FarmEmulator
from farmwatch_emulators.field_buses import FarmBuses
from farmwatch_emulators.mcu import McuEmulator
from farmwatch_emulators.pty_link import PtyLink
from farmwatch_emulators.scenario import DroughtScenario, raw_for
from farmwatch_local.demo_lorawan import UPLINK_EVERY_SIM_S, FarmRadio, NetworkServer
from farmwatch_local.services import MosquittoServer, free_port
from farmwatch_local.wire import CountingProxy, Counts, make_certificates, tls_listener
from farmwatch_shared.calibration.calibrate import Calibrator, SensorState
from farmwatch_shared.calibration.curves import CalibrationBook
from farmwatch_shared.contract import (
    UNITS,
    ContractError,
    Reading,
    ReadingBatch,
    decode_message,
    encode_batch,
    readings_topic,
)
from farmwatch_shared.farm.model import BusSource, FarmConfig, SensorConfig, load_farm_config
from farmwatch_shared.hub.server_config import ClusterPlan

log = logging.getLogger(__name__)
DAY_S = 86_400
MONTH_DAYS = 30
START_S = 2.3 * DAY_S
"""Where in the drought scenario the run starts (as the demo does)."""
BASELINE_KEEPALIVE_S = 60
TLS_TICKET_LIFETIME_S = 7200
"""How long a TLS 1.3 session ticket of the broker (OpenSSL's default) can be resumed."""
LORAWAN_UPLINK_S = float(UPLINK_EVERY_SIM_S)
"""A LoRaWAN device's uplink interval: 20 minutes (72 a day), as the demo's devices (the farm
files' rules count on it); the bill runs in real time."""
HUB_TLS_TICKET_LIFETIME_S = 7 * DAY_S
"""The same for a hub node: nats-server is Go, whose TLS 1.3 tickets live 7 days (its ticket
keys rotate daily and are kept 7 days)."""


def hub_env(port: int, ca_file: Path, user: str, password_file: Path) -> dict[str, str]:
    """The agent on the hub (docs/scale-out.md, "Moving a farm"): ``transport=jetstream``, one
    ``tls://`` URL (the proxy's ``port``), the farm's user, the hub's CA; the rest as shipped."""
    return {
        "FARMWATCH_EDGE_TRANSPORT": "jetstream",
        "FARMWATCH_EDGE_NATS_SERVERS": f"tls://127.0.0.1:{port}",
        "FARMWATCH_EDGE_NATS_USERNAME": user,
        "FARMWATCH_EDGE_NATS_PASSWORD_FILE": str(password_file),
        "FARMWATCH_EDGE_NATS_TLS_CA_FILE": str(ca_file),
    }


def readings_per_day(farm: FarmConfig, agent_id: str) -> int:
    """Readings a day of all the agent's sensors: the farm file's sample rates
    (microcontroller, bus devices), a LoRaWAN device's uplink interval."""
    return sum(DAY_S // int(sensor_interval(farm, agent_id, s)) for s in farm.sensors_of(agent_id))


def device_intervals(farm: FarmConfig, agent_id: str) -> dict[tuple[str, str], float]:
    """(bus, address) → poll interval of every field-bus device of the agent."""
    return {
        (bus.id, str(device.address)): device.interval_s
        for bus in farm.buses_of(agent_id)
        for device in bus.devices
    }


@dataclass
class Traffic:
    """What the broker saw of one farm (counted by a subscriber on the plain listener)."""

    readings: int = 0
    readings_messages: int = 0
    status_messages: int = 0
    committed_messages: int = 0
    batch_times: list[float] = field(default_factory=list)
    status_times: list[float] = field(default_factory=list)

    def copy(self) -> Traffic:
        """A copy whose lists the counting thread no longer appends to."""
        return replace(
            self, batch_times=list(self.batch_times), status_times=list(self.status_times)
        )


class BrokerWatch:
    """A subscriber (collector user) counting each farm's messages on the broker."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.farms: dict[str, Traffic] = defaultdict(Traffic)
        self._sensors: dict[str, Counter[str]] = defaultdict(Counter)
        self._lock = threading.Lock()
        self._client = endpoint.client(
            COLLECTOR_USER, f"bench-bill-{secrets.token_hex(4)}", on_message=self._on_message
        )
        subscribe(self._client, "farmwatch/v1/#")

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        parts = message.topic.split("/")
        if len(parts) != 5 or message.retain:
            return
        now = time.monotonic()
        with self._lock:
            traffic = self.farms[parts[2]]
            if parts[4] == "status":
                traffic.status_messages += 1
                traffic.status_times.append(now)
            elif parts[4] == "committed":
                traffic.committed_messages += 1
            elif parts[4] == "readings":
                with contextlib.suppress(ContractError):
                    decoded = decode_message(message.topic, bytes(message.payload))
                    readings = getattr(decoded, "readings", ())
                    traffic.readings += len(readings)
                    self._sensors[parts[2]].update(r.sensor for r in readings)
                traffic.readings_messages += 1
                traffic.batch_times.append(now)

    def snapshot(self, farm: str) -> Traffic:
        """A copy of a farm's counts."""
        with self._lock:
            return self.farms[farm].copy()

    def delivered(self, farm: str) -> dict[str, int]:
        """Sensor → readings of a farm on the broker so far."""
        with self._lock:
            return dict(self._sensors[farm])

    def close(self) -> None:
        """Disconnect."""
        close(self._client)


def wait_for(predicate: Any, timeout_s: float, what: str) -> None:
    """Poll every 50 ms until ``predicate()``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out: {what}")
        time.sleep(0.05)


@dataclass
class LinkBill:
    """One client's link: the steady window, the cost of a reconnect, and what it carried."""

    farm: str
    who: str
    readings_per_day: int
    window_s: float
    steady: Counts
    reconnect: Counts
    """A reconnect after a drop, the TLS session resumed if the client can."""
    reconnect_full: Counts
    """A reconnect after a drop with a full TLS handshake (the client's ticket is not valid)."""
    first_connect: Counts
    messages_in_window: int
    readings_in_window: int
    drop_every_h: float
    urgent: tuple[str, ...] = ()
    """Why the agent sent at once during the window (its log, ``edge/urgency.py``)."""
    ticket_lifetime_s: float = TLS_TICKET_LIFETIME_S
    """How long the server's TLS session tickets can be resumed."""
    statuses_in_window: int = 0
    """The agent's status messages (on the hub: presence puts) in the steady window."""

    def per_day(self) -> Counts:
        """Steady state scaled to a day, plus the reconnects of a day (floats rounded): with a
        full handshake when the drops are further apart than a TLS ticket lives."""
        scale = DAY_S / self.window_s
        drops = 24 / self.drop_every_h
        reconnect = self.per_drop
        return Counts(
            round(self.steady.bytes_up * scale + reconnect.bytes_up * drops),
            round(self.steady.bytes_down * scale + reconnect.bytes_down * drops),
            round(self.steady.segs_up * scale + reconnect.segs_up * drops),
            round(self.steady.segs_down * scale + reconnect.segs_down * drops),
        )

    @property
    def per_drop(self) -> Counts:
        """What one link drop costs at this drop interval."""
        if self.drop_every_h * 3600 > self.ticket_lifetime_s:
            return self.reconnect_full
        return self.reconnect

    @property
    def wire_per_month(self) -> float:
        """Bytes on the wire (TLS + TCP/IP) per 30-day month."""
        return self.per_day().wire * MONTH_DAYS

    @property
    def tls_per_month(self) -> float:
        """TLS bytes (TCP payload) per 30-day month."""
        return self.per_day().payload * MONTH_DAYS

    @property
    def wire_per_reading(self) -> float:
        """Bytes on the wire per reading."""
        return self.per_day().wire / self.readings_per_day

    @property
    def messages_per_day(self) -> float:
        """Messages per day (steady state): MQTT PUBLISH both ways; on the hub the agent's
        publishes (batches, presence puts), each answered by a JetStream acknowledgement."""
        return self.messages_in_window * DAY_S / self.window_s


class AgentRun:
    """One farm's emulated hardware (its LoRaWAN devices through their own network server's
    broker) and its ``farmwatch-edge`` process through a proxy."""

    def __init__(
        self,
        farm_id: str,
        broker_tls_port: int,
        ca_file: Path,
        password: str,
        workdir: Path,
        cfg: BillConfig,
        transport: str = "mqtt",
    ) -> None:
        self.farm_id = farm_id
        self.transport = transport
        self.config = load_farm_config(FARM_FILES / f"{farm_id}.toml")
        agent = self.config.agents[0]
        self.agent_id = agent.id
        tag = "" if transport == "mqtt" else "hub-"
        self.dir = workdir / f"bill-{tag}{farm_id}"
        self.dir.mkdir(parents=True)
        self.link = PtyLink()
        mcu = McuEmulator(
            self.link,
            interval_s=agent.microcontroller.sample_interval_s,
            buffer_size=agent.microcontroller.buffer_readings,
        )
        sensors = self.config.sensors_of(agent.id)
        self.emulator = FarmEmulator(
            mcu, [s for s in sensors if s.source is None], DroughtScenario(), 1.0, START_S
        )
        self.buses = FarmBuses(self.config, agent.id, self.emulator.scenario, self._sim_time)
        self._t0 = time.monotonic()
        farm_file = self._farm_file_with_bus_ports(workdir / f"bill-{tag}farms")
        secret = self.dir / f"{transport}-password"
        secret.write_text(password)
        secret.chmod(0o600)
        self.proxy = CountingProxy(broker_tls_port)
        # the gateway's broker is on the farm's LAN: the agent reaches it directly, not billed
        self.network_server = (
            NetworkServer(self.dir / "network-server", self.dir)
            if self.config.lorawan_devices_of(agent.id)
            else None
        )
        self.radio: FarmRadio | None = None
        uplink = (
            mqtt_env(self.proxy.port, ca_file, farm_id, secret)
            if transport == "mqtt"
            else hub_env(self.proxy.port, ca_file, farm_id, secret)
        )
        self.env = {
            **os.environ,
            "FARMWATCH_EDGE_FARM_FILE": str(farm_file),
            "FARMWATCH_EDGE_SERIAL_PORT": self.link.path,
            **uplink,
            **({} if self.network_server is None else self.network_server.agent_env()),
            "FARMWATCH_EDGE_OUTBOX_PATH": str(self.dir / "outbox.sqlite3"),
            **cfg.edge_env,
        }
        self.farm_file = farm_file
        self.process: subprocess.Popen[bytes] | None = None

    def _sim_time(self) -> float:
        return START_S + (time.monotonic() - self._t0)

    def _farm_file_with_bus_ports(self, farms: Path) -> Path:
        text = (FARM_FILES / f"{self.farm_id}.toml").read_text(encoding="utf-8")
        for bus in self.config.buses_of(self.agent_id):
            text = text.replace(f'port = "{bus.port}"', f'port = "{self.buses.ports[bus.id]}"', 1)
        farms.mkdir(exist_ok=True)
        path = farms / f"{self.farm_id}.toml"
        path.write_text(text, encoding="utf-8")
        return path

    def start(self) -> None:
        """Hardware (and the network server) first, then the agent."""
        if self.network_server is not None:
            self.network_server.start()
        self.buses.start()
        self.emulator.mcu.start()
        self._t0 = time.monotonic()
        self.emulator.start()
        if self.network_server is not None:
            # real time, as the microcontroller's: each device's first uplink 20 minutes on
            self.radio = self.network_server.farm_radio(
                self.config, self.agent_id, self.emulator.scenario, self._sim_time, 1.0
            )
            assert self.radio is not None  # the farm has LoRaWAN devices
            self.radio.devices.start()
        program = Path(sys.executable).parent / "farmwatch-edge"
        self.process = subprocess.Popen(
            [str(program)], env=self.env, stderr=(self.dir / "agent.log").open("wb")
        )

    def urgent_sends(self) -> tuple[str, ...]:
        """The reasons of the agent's urgent sends so far, from its log (INFO, as shipped)."""
        marker = "sending at once: "
        text = (self.dir / "agent.log").read_text(encoding="utf-8", errors="replace")
        return tuple(line.split(marker, 1)[1] for line in text.splitlines() if marker in line)

    def stop(self) -> None:
        """Agent, then hardware and proxy."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(20)
        if self.radio is not None:
            self.radio.stop()
        if self.network_server is not None:
            self.network_server.stop()
        self.emulator.stop()
        self.emulator.mcu.stop()
        self.buses.stop()
        self.link.close()
        self.proxy.close()


def sensor_interval(config: FarmConfig, agent_id: str, sensor: SensorConfig) -> float:
    """A sensor's sample interval: the farm file's (microcontroller, field-bus device), or a
    LoRaWAN device's uplink interval (``LORAWAN_UPLINK_S``)."""
    source = sensor.source
    if source is None:
        return float(config.agent(agent_id).microcontroller.sample_interval_s)
    if not isinstance(source, BusSource):
        return LORAWAN_UPLINK_S
    return float(device_intervals(config, agent_id)[(source.bus, str(source.address))])


class BaselinePublisher:
    """One JSON message per reading, QoS 1, MQTT 3.1.1, 60 s keepalive, TLS, via a proxy."""

    def __init__(self, config: FarmConfig, tls_port: int, ca_file: Path, password: str) -> None:
        self.config = config
        self.farm_id = config.farm.id
        self.agent_id = config.agents[0].id
        self.proxy = CountingProxy(tls_port)
        self.sent = 0
        self.acked = 0
        self.connects = 0
        self._stop = threading.Event()
        self._calibrator = Calibrator(CalibrationBook(config.calibrations, config.soil_curves))
        self._scenario = DroughtScenario()
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"baseline-{self.farm_id}",
            protocol=paho.MQTTv311,
        )
        client.username_pw_set(self.farm_id, password)
        client.tls_set(ca_certs=str(ca_file), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        client.reconnect_delay_set(1, 2)
        self._client = client
        self._thread = threading.Thread(target=self._run, name="baseline", daemon=True)
        self.t0 = 0.0

    def _on_connect(self, c: Any, u: Any, flags: Any, reason: Any, props: Any) -> None:
        if not reason.is_failure:
            self.connects += 1

    def _on_publish(self, c: Any, u: Any, mid: int, reason: Any, props: Any) -> None:
        self.acked += 1

    def start(self) -> None:
        """Connect and publish at the farm's sample rates from now on."""
        self._client.connect("127.0.0.1", self.proxy.port, keepalive=BASELINE_KEEPALIVE_S)
        self._client.loop_start()
        self.t0 = time.monotonic()
        self._thread.start()

    def _run(self) -> None:
        sensors = self.config.sensors_of(self.agent_id)
        states = {s.id: SensorState() for s in sensors}
        intervals = {s.id: sensor_interval(self.config, self.agent_id, s) for s in sensors}
        due = dict.fromkeys(intervals, 0.0)
        topic = readings_topic(self.farm_id, self.agent_id)
        seq = 0
        while not self._stop.is_set():
            elapsed = time.monotonic() - self.t0
            for sensor in sensors:
                if due[sensor.id] > elapsed:
                    continue
                due[sensor.id] += intervals[sensor.id]
                reading = self._reading(sensor, START_S + elapsed, seq, states)
                seq += 1
                batch = ReadingBatch(
                    v=1, farm=self.farm_id, agent=self.agent_id, readings=[reading]
                )
                self._client.publish(topic, encode_batch(batch), qos=1)
                self.sent += 1
            self._stop.wait(max(0.0, min(due.values()) - (time.monotonic() - self.t0)))

    def _reading(
        self, sensor: SensorConfig, t: float, seq: int, states: dict[str, SensorState]
    ) -> Reading:
        raw = raw_for(sensor, self._scenario.state_pct(sensor, t))
        ts = time.time_ns() // 1_000_000
        calibrated = self._calibrator.calibrate(sensor, raw, ts, states[sensor.id])
        states[sensor.id] = SensorState(ts, calibrated.counter)
        volume = calibrated.volume_l
        return Reading(
            seq=seq,
            sensor=sensor.id,
            kind=sensor.kind,
            ts=ts,
            value=round(calibrated.value, 4),
            unit=UNITS[sensor.kind],
            raw=raw,
            volume_l=None if volume is None else round(volume, 2),
        )

    def stop(self) -> None:
        """Stop publishing and disconnect."""
        self._stop.set()
        self._thread.join(5)
        self._client.disconnect()
        self._client.loop_stop()
        self.proxy.close()


@dataclass
class BillConfig:
    """What one bill run measures."""

    batches: int = 0
    """Batch periods in the agent's steady-state window: from 2 s after the batch the agent
    sends at start to 2 s after the one its batch age sends ``batches`` periods later (urgent
    batches in between count as well). 0: ``steady_batches`` (whole status intervals when
    a status heartbeat falls between two drops, so that it is in the bill)."""
    drop_every_h: float = 4.0
    edge_env: dict[str, str] = field(default_factory=dict)
    """Settings changed from the shipped ones (empty: today's defaults)."""
    farms: tuple[str, ...] = FARMS
    full_handshake_port: int = 0
    """The agents' broker's second TLS listener (set by ``measure``)."""
    baseline_window_s: float = 300.0
    """The baseline's steady window (its messages follow the sample rates: any length)."""
    hub_farms: tuple[str, ...] = ("oax-mixteca",)
    """Farms whose agent is measured on the hub too (``transport=jetstream``,
    ``benchmarks/bill_hub.py``)."""
    hub_server_ping_s: int = ClusterPlan.client_ping_interval_s
    """How long an agent may be quiet before the node pings it (the shipped plan's default)."""
    hub_batches: int = 3
    """The hub agents' window in batch periods: an hour, so that its presence puts and pings
    (every 30 minutes) are in it in proportion, as the batches are."""


def _with_syn_ack(counts: Counts, connections: int) -> Counts:
    """The kernel does not count the SYN-ACK on an accepted socket: one segment each."""
    return counts + Counts(0, 0, 0, connections)


def batch_age_s(cfg: BillConfig) -> float:
    """The batch age of the agents under test (the shipped default unless changed)."""
    default = EdgeSettings.model_fields["batch_max_age_s"].default
    return float(cfg.edge_env.get("FARMWATCH_EDGE_BATCH_MAX_AGE_S", default))


def status_interval_s(cfg: BillConfig) -> float:
    """The status interval of the agents under test (the shipped default unless changed)."""
    default = EdgeSettings.model_fields["status_interval_s"].default
    return float(cfg.edge_env.get("FARMWATCH_EDGE_STATUS_INTERVAL_S", default))


STEADY_BATCHES = 3
"""Batch periods in the window when no status heartbeat falls between two drops: an hour at
the shipped batch age."""


def heartbeats_between_drops(cfg: BillConfig) -> bool:
    """Whether the agent's status heartbeat comes before the next link drop does: otherwise
    every status without news is the one put on each reconnect, billed with the reconnect
    (``edge/status_schedule.py``: a put restarts the heartbeat)."""
    return status_interval_s(cfg) < cfg.drop_every_h * 3600


def steady_batches(cfg: BillConfig) -> int:
    """Batch periods in the agent's window: ``cfg.batches``; or, when heartbeats fall between
    drops, the fewest whose length is a whole number of status intervals as well (20 min and
    1 h: three periods); else ``STEADY_BATCHES``."""
    if cfg.batches:
        return cfg.batches
    if not heartbeats_between_drops(cfg):
        return STEADY_BATCHES
    age, status = round(batch_age_s(cfg)), round(status_interval_s(cfg))
    return math.lcm(age, status) // age


def expected_statuses(cfg: BillConfig, window_s: float) -> int:
    """Status heartbeats an agent without news puts in a steady window of ``window_s``."""
    return round(window_s / status_interval_s(cfg)) if heartbeats_between_drops(cfg) else 0


class Watch(Protocol):
    """What the server saw of each farm: ``BrokerWatch``, or the hub's ``HubWatch``."""

    def snapshot(self, farm: str) -> Traffic:
        """A copy of a farm's counts."""
        ...


def measure_agent(run: AgentRun, watch: Watch, cfg: BillConfig) -> LinkBill:
    """Steady window and one reconnect of an agent (after it is online; on the hub its
    presence put is its status, its broker's second listener the hub's second node)."""
    farm = run.farm_id
    wait_for(lambda: watch.snapshot(farm).status_messages >= 1, 120, f"{farm} online")
    wait_for(lambda: len(watch.snapshot(farm).batch_times) >= 1, 300, f"{farm} first batch")
    start_batch = watch.snapshot(farm).batch_times[0]  # sent at once: the agent started
    time.sleep(max(0.0, start_batch + 2.0 - time.monotonic()))
    first_connect = _with_syn_ack(run.proxy.totals(), 1)
    before, traffic_before, t_before = first_connect, watch.snapshot(farm), time.monotonic()
    # the window ends with the batch the batch age sends (not an urgent one before it)
    periods = steady_batches(cfg)
    due = start_batch + periods * batch_age_s(cfg) - 30.0
    wait_for(
        lambda: any(t >= due for t in watch.snapshot(farm).batch_times),
        periods * batch_age_s(cfg) + 600,
        f"{farm} steady window",
    )
    end_batch = min(t for t in watch.snapshot(farm).batch_times if t >= due)
    time.sleep(max(0.0, end_batch + 2.0 - time.monotonic()))
    after, traffic_after, t_after = run.proxy.totals(), watch.snapshot(farm), time.monotonic()
    urgent = run.urgent_sends()
    reconnect = measure_reconnect(run.proxy, lambda: watch.snapshot(farm).status_messages)
    # the broker's second TLS listener has ticket keys of its own: the agent's ticket is
    # refused there, as an expired one is (a slight overestimate: it was still offered)
    run.proxy.retarget(cfg.full_handshake_port)
    full = measure_reconnect(run.proxy, lambda: watch.snapshot(farm).status_messages)
    hub = run.transport != "mqtt"
    return LinkBill(
        farm=farm,
        who="farmwatch, hub" if hub else "farmwatch",
        readings_per_day=readings_per_day(run.config, run.agent_id),
        window_s=t_after - t_before,
        steady=after - before,
        reconnect=reconnect,
        reconnect_full=full,
        first_connect=first_connect,
        messages_in_window=(
            traffic_after.readings_messages
            + traffic_after.status_messages
            + traffic_after.committed_messages
            - traffic_before.readings_messages
            - traffic_before.status_messages
            - traffic_before.committed_messages
        ),
        readings_in_window=traffic_after.readings - traffic_before.readings,
        drop_every_h=cfg.drop_every_h,
        urgent=tuple(u for u in urgent if u != "restart"),  # the restart opens the window
        ticket_lifetime_s=HUB_TLS_TICKET_LIFETIME_S if hub else TLS_TICKET_LIFETIME_S,
        statuses_in_window=traffic_after.status_messages - traffic_before.status_messages,
    )


def measure_broker_agent(run: AgentRun, watch: BrokerWatch, cfg: BillConfig) -> LinkBill:
    """``measure_agent`` on the broker, then proof that every sensor it bills reached the
    broker (LoRaWAN ones included) and that the window held its share of status messages:
    raise if not."""
    bill = measure_agent(run, watch, cfg)
    delivered = watch.delivered(run.farm_id)
    missing = [s.id for s in run.config.sensors_of(run.agent_id) if not delivered.get(s.id)]
    if missing:
        raise RuntimeError(f"{run.farm_id}: no reading of {', '.join(missing)} on the broker")
    expected = expected_statuses(cfg, bill.window_s)
    if bill.statuses_in_window != expected:  # the window would bill too many or too few
        raise RuntimeError(
            f"{run.farm_id}: {bill.statuses_in_window} status messages in a window of "
            f"{bill.window_s:.0f} s, expected {expected} (a status with news in a steady "
            "state, or a window that misses a heartbeat)"
        )
    log.info("%s: readings on the broker by sensor: %s", run.farm_id, delivered)
    return bill


def measure_reconnect(proxy: CountingProxy, marker: Any) -> Counts:
    """Reset the link; the old connection's reset plus the new connection until 2 s after
    ``marker()`` (a count of messages) grew."""
    seen = marker()
    connections = proxy.connections()
    before = proxy.totals()
    proxy.cut()
    cut = proxy.totals() - before + Counts(0, 0, 0, 1)  # the RST the proxy sends
    wait_for(lambda: proxy.connections() > connections, 120, "reconnect")
    wait_for(lambda: marker() > seen, 120, "reconnected and talking")
    time.sleep(2.0)
    return _with_syn_ack(proxy.latest(), 1) + cut


def baseline_window(farm: FarmConfig, agent_id: str, at_least_s: float) -> float:
    """The shortest multiple of ``at_least_s`` that holds whole intervals of every sensor: each
    sends the same number of readings whatever the window's phase."""
    intervals = (int(sensor_interval(farm, agent_id, s)) for s in farm.sensors_of(agent_id))
    return float(math.lcm(int(at_least_s), *intervals))


def measure_baseline(base: BaselinePublisher, cfg: BillConfig) -> LinkBill:
    """The baseline's window (aligned between sample instants, stretched to a multiple of
    every sensor's interval: a LoRaWAN device's 20 minutes too) and one reconnect."""
    wait_for(lambda: base.acked >= 1, 60, "baseline connected")
    period = min(
        sensor_interval(base.config, base.agent_id, s)
        for s in base.config.sensors_of(base.agent_id)
    )
    window_s = baseline_window(base.config, base.agent_id, cfg.baseline_window_s)
    first_connect = _with_syn_ack(base.proxy.totals(), 1)
    start = base.t0 + period * (1 + int((time.monotonic() - base.t0) / period)) + period / 2
    time.sleep(max(0.0, start - time.monotonic()))
    before, sent_before = base.proxy.totals(), base.sent
    time.sleep(window_s)
    after, sent_after = base.proxy.totals(), base.sent
    reconnect = measure_reconnect(base.proxy, lambda: base.acked)  # paho never resumes
    return LinkBill(
        farm=base.farm_id,
        who="baseline",
        readings_per_day=readings_per_day(base.config, base.agent_id),
        window_s=window_s,
        steady=after - before,
        reconnect=reconnect,
        reconnect_full=reconnect,
        first_connect=first_connect,
        messages_in_window=sent_after - sent_before,
        readings_in_window=sent_after - sent_before,
        drop_every_h=cfg.drop_every_h,
    )


def _start_collector(
    broker: MosquittoServer, influx_url: str, password: str, workdir: Path, farms_dir: Path
) -> subprocess.Popen[bytes]:
    secret = workdir / "collector-password"
    secret.write_text(password)
    secret.chmod(0o600)
    env = {
        **os.environ,
        "FARMWATCH_COLLECTOR_MQTT_HOST": "127.0.0.1",
        "FARMWATCH_COLLECTOR_MQTT_PORT": str(broker.port),
        "FARMWATCH_COLLECTOR_MQTT_USERNAME": COLLECTOR_USER,
        "FARMWATCH_COLLECTOR_MQTT_PASSWORD_FILE": str(secret),
        "FARMWATCH_COLLECTOR_INFLUX_URL": influx_url,
        "FARMWATCH_COLLECTOR_INFLUX_DATABASE": f"bill_{secrets.token_hex(3)}",
        "FARMWATCH_COLLECTOR_FARM_DIR": str(farms_dir),
        "FARMWATCH_COLLECTOR_QUARANTINE_PATH": str(workdir / "quarantine.sqlite3"),
        "FARMWATCH_COLLECTOR_LOG_LEVEL": "INFO",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "collector.cli"],
        env=env,
        stdout=(workdir / "collector.log").open("wb"),
        stderr=subprocess.STDOUT,
    )


def in_parallel(jobs: list[Callable[[], LinkBill]]) -> list[LinkBill]:
    """Run the measurements at once (each waits on its own link); their results in order."""
    results: dict[int, LinkBill] = {}
    errors: list[BaseException] = []

    def task(index: int, job: Callable[[], LinkBill]) -> None:
        try:
            results[index] = job()
        except BaseException as exc:  # noqa: BLE001 - re-raised below, in the caller's thread
            errors.append(exc)

    threads = [
        threading.Thread(target=task, args=(i, job), daemon=True) for i, job in enumerate(jobs)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return [results[i] for i in range(len(jobs))]


class _Rig:
    """Brokers, collector, broker watch, agents and baselines of one bill run."""

    def __init__(self, influx_url: str, workdir: Path, cfg: BillConfig) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.ca_file = make_certificates(workdir / "tls")
        self.passwords = {u: secrets.token_hex(12) for u in (COLLECTOR_USER, *cfg.farms)}
        self.tls_ports = [free_port(), free_port()]
        self.full_handshake_port = free_port()
        second = tls_listener(self.full_handshake_port, workdir / "tls")
        self.brokers = [
            MosquittoServer(
                data_dir=workdir / name,
                users=self.passwords,
                extra_config=tls_listener(port, workdir / "tls") + extra,
            )
            for name, port, extra in zip(
                ("broker", "baseline-broker"), self.tls_ports, (f"\n{second}", ""), strict=True
            )
        ]
        self.influx_url = influx_url
        self.workdir = workdir
        self.cfg = cfg
        self.runs: list[AgentRun] = []
        self.bases: list[BaselinePublisher] = []
        self.collector: subprocess.Popen[bytes] | None = None
        self.watch: BrokerWatch | None = None

    def start(self) -> BrokerWatch:
        """Everything, in dependency order."""
        for broker in self.brokers:
            broker.start()
        self.runs = [
            AgentRun(f, self.tls_ports[0], self.ca_file, self.passwords[f], self.workdir, self.cfg)
            for f in self.cfg.farms
        ]
        self.collector = _start_collector(
            self.brokers[0],
            self.influx_url,
            self.passwords[COLLECTOR_USER],
            self.workdir,
            self.runs[0].farm_file.parent,
        )
        log = self.workdir / "collector.log"
        # an agent's first batch before the collector subscribed would be refused (0x10) and
        # sent again inside the window: start the agents once the collector listens
        wait_for(lambda: "Suscrito / subscribed" in log.read_text(), 60, "collector subscribed")
        self.watch = BrokerWatch(Endpoint(self.brokers[0].port, self.influx_url, self.passwords))
        for run in self.runs:
            run.start()
        self.bases = [
            BaselinePublisher(
                run.config, self.tls_ports[1], self.ca_file, self.passwords[run.farm_id]
            )
            for run in self.runs
        ]
        for base in self.bases:
            base.start()
        return self.watch

    def stop(self) -> None:
        """Everything that was started, in reverse order."""
        for base in self.bases:
            base.stop()
        for run in self.runs:
            run.stop()
        if self.watch is not None:
            self.watch.close()
        if self.collector is not None:
            self.collector.terminate()
            self.collector.wait(20)
        for broker in self.brokers:
            broker.stop()


def measure(influx_url: str, workdir: Path, cfg: BillConfig) -> list[LinkBill]:
    """Every farm's agent and baseline, and the hub's agents, measured at once; MQTT agents
    first, then baselines, then the hub's agents."""
    from benchmarks.bill_hub import HubRig  # it builds on this module

    jobs: list[Callable[[], LinkBill]] = []
    rigs: list[_Rig | HubRig] = []
    try:
        if cfg.farms:
            rig = _Rig(influx_url, workdir, cfg)
            rigs.append(rig)
            mqtt_cfg = replace(cfg, full_handshake_port=rig.full_handshake_port)
            watch = rig.start()
            jobs += [partial(measure_broker_agent, run, watch, mqtt_cfg) for run in rig.runs]
            jobs += [partial(measure_baseline, base, mqtt_cfg) for base in rig.bases]
        if cfg.hub_farms:
            hub = HubRig(workdir / "hub", cfg)
            rigs.append(hub)
            jobs += hub.start()
        return in_parallel(jobs)
    finally:
        for started in reversed(rigs):
            started.stop()


def render(bills: list[LinkBill]) -> list[str]:
    """A markdown table of the bills, farm by farm, agent and baseline."""
    lines = [
        "| farm | sender | MB/month (wire) | MB/month (TLS only) | B/reading (wire) "
        "| messages/day | readings/day | window | reconnect, resumed / full TLS (wire B) "
        "| readings in window | sent at once in window |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for b in bills:
        lines.append(
            f"| {b.farm} | {b.who} | {b.wire_per_month / 1e6:.2f} | {b.tls_per_month / 1e6:.2f} "
            f"| {b.wire_per_reading:.1f} | {b.messages_per_day:,.0f} | {b.readings_per_day:,} "
            f"| {b.window_s:.0f} s | {b.reconnect.wire:,} / {b.reconnect_full.wire:,} "
            f"| {b.readings_in_window} | {', '.join(b.urgent) or '–'} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the bill benchmark alone (its own InfluxDB) and print the table."""
    import argparse
    import tempfile

    from farmwatch_local.services import InfluxServer

    parser = argparse.ArgumentParser(prog="python -m benchmarks.bill", description=__doc__)
    parser.add_argument(
        "--batches", type=int, default=0, help="batch periods (0: whole status intervals)"
    )
    parser.add_argument("--drop-every-h", type=float, default=4.0)
    parser.add_argument("--farm", action="append", help="farm id (default: all three)")
    parser.add_argument(
        "--hub-farm", action="append", help="farm id on the hub (default: oax-mixteca)"
    )
    parser.add_argument(
        "--only", choices=("mqtt", "hub"), help="measure one transport (default: both)"
    )
    parser.add_argument("--hub-batches", type=int, default=BillConfig.hub_batches)
    parser.add_argument(
        "--hub-server-ping-s",
        type=int,
        default=BillConfig.hub_server_ping_s,
        help="how long a quiet agent waits for the node's ping (the plan's client_ping_interval_s)",
    )
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the agent")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    cfg = BillConfig(
        batches=args.batches,
        drop_every_h=args.drop_every_h,
        edge_env=dict(item.split("=", 1) for item in args.env),
        farms=() if args.only == "hub" else tuple(args.farm or FARMS),
        hub_farms=() if args.only == "mqtt" else tuple(args.hub_farm or ("oax-mixteca",)),
        hub_batches=args.hub_batches,
        hub_server_ping_s=args.hub_server_ping_s,
    )
    with tempfile.TemporaryDirectory(prefix="farmwatch-bill-") as tmp:
        influx = InfluxServer(data_dir=Path(tmp) / "influxdb")
        influx.start()
        try:
            bills = measure(influx.url, Path(tmp) / "run", cfg)
        finally:
            influx.stop()
    print("\n".join(render(bills)))
    for b in bills:
        print(b)
    return 0


if __name__ == "__main__":
    sys.exit(main())
