"""Shared pieces of the benchmarks: the servers, MQTT helpers, statistics and the result rows."""

from __future__ import annotations

import secrets
import statistics
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from farmwatch_local.services import InfluxServer, MosquittoServer, free_port
from farmwatch_local.wire import make_certificates, tls_listener
from farmwatch_shared.influx import InfluxV1Writer

COLLECTOR_USER = "farmwatch-collector"
FARMS = ("oax-mixteca", "oax-istmo", "chis-frailesca")
REPO = Path(__file__).resolve().parent.parent
FARM_FILES = REPO / "firmware_configs"
T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
EDGE_ENV = REPO / "deploy" / "env" / "edge.env.example"


def shipped_edge_transport() -> dict[str, str]:
    """The TLS transport lines of the shipped edge.env (port 8883 and a CA file): proof the
    benchmark's agent is configured as a deployed one (the values are replaced)."""
    keys = {}
    for line in EDGE_ENV.read_text(encoding="utf-8").splitlines():
        if line.startswith("FARMWATCH_EDGE_MQTT_") and "=" in line:
            key, value = line.split("=", 1)
            keys[key] = value
    if (
        keys.get("FARMWATCH_EDGE_MQTT_PORT") != "8883"
        or "FARMWATCH_EDGE_MQTT_TLS_CA_FILE" not in keys
    ):
        raise RuntimeError(f"{EDGE_ENV} no longer configures TLS: the benchmark must follow it")
    return keys


def mqtt_env(port: int, ca_file: Path, user: str, password_file: Path) -> dict[str, str]:
    """The agent's MQTT uplink: the shipped edge.env's TLS transport, to ``port`` on loopback."""
    env = {
        "FARMWATCH_EDGE_MQTT_HOST": "127.0.0.1",
        "FARMWATCH_EDGE_MQTT_PORT": str(port),
        "FARMWATCH_EDGE_MQTT_TLS_CA_FILE": str(ca_file),
        "FARMWATCH_EDGE_MQTT_USERNAME": user,
        "FARMWATCH_EDGE_MQTT_PASSWORD_FILE": str(password_file),
    }
    assert set(shipped_edge_transport()) <= set(env)
    return env


@dataclass(frozen=True)
class Endpoint:
    """Where the benchmark servers listen and the broker users' passwords."""

    broker_port: int
    influx_url: str
    passwords: dict[str, str]

    def client(
        self,
        user: str,
        client_id: str,
        *,
        clean_start: bool = True,
        session_expiry_s: int = 0,
        max_inflight: int = 100,
        on_message: Callable[[Any, Any, paho.MQTTMessage], None] | None = None,
    ) -> paho.Client:
        """A connected MQTT v5 client with its network thread running; caller disconnects."""
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv5,
        )
        client.username_pw_set(user, self.passwords[user])
        client.max_inflight_messages_set(max_inflight)
        client.max_queued_messages_set(0)
        connected = threading.Event()

        def on_connect(c: Any, u: Any, flags: Any, reason: Any, props: Any) -> None:
            if not reason.is_failure:
                connected.set()

        client.on_connect = on_connect
        if on_message is not None:  # before connecting: a resumed session delivers at once
            client.on_message = on_message
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = session_expiry_s
        client.connect("127.0.0.1", self.broker_port, clean_start=clean_start, properties=props)
        client.loop_start()
        if not connected.wait(10):
            client.loop_stop()
            raise RuntimeError(f"could not connect as {user}")
        return client


@dataclass
class Stack:
    """A Mosquitto broker (shipped policy, with the shipped TLS listener on ``tls_port``, its
    certificates by the shipped script) and an InfluxDB 1.x, started for the benchmarks."""

    workdir: Path
    passwords: dict[str, str] = field(
        default_factory=lambda: {u: secrets.token_hex(12) for u in (COLLECTOR_USER, *FARMS)}
    )
    broker: MosquittoServer = field(init=False)
    influx: InfluxServer = field(init=False)
    tls_port: int = field(init=False)
    ca_file: Path = field(init=False)
    _databases: int = 0

    def __post_init__(self) -> None:
        """The servers, not yet started."""
        certs = self.workdir / "tls"
        self.ca_file = make_certificates(certs)
        self.tls_port = free_port()
        self.broker = MosquittoServer(
            data_dir=self.workdir / "mosquitto",
            users=self.passwords,
            extra_config=tls_listener(self.tls_port, certs),
        )
        self.influx = InfluxServer(data_dir=self.workdir / "influxdb")

    def start(self) -> None:
        """Start both servers."""
        self.broker.start()
        self.influx.start()

    def stop(self) -> None:
        """Stop both servers."""
        self.broker.stop()
        self.influx.stop()

    @property
    def endpoint(self) -> Endpoint:
        """How clients reach these servers."""
        return Endpoint(self.broker.port, self.influx.url, self.passwords)

    def new_database(self, prefix: str) -> tuple[str, InfluxV1Writer]:
        """A database nobody used yet (created) and a writer for it."""
        self._databases += 1
        name = f"{prefix}_{self._databases}"
        writer = InfluxV1Writer(self.influx.url, name)
        writer.ensure_database()
        return name, writer


def close(client: paho.Client) -> None:
    """Disconnect cleanly (a persistent session stays on the broker) and stop the loop."""
    client.disconnect()
    client.loop_stop()


def subscribe(client: paho.Client, topic: str) -> None:
    """Subscribe at QoS 1 and wait for the SUBACK."""
    done = threading.Event()
    client.on_subscribe = lambda *args: done.set()
    client.subscribe(topic, qos=1)
    if not done.wait(10):
        raise RuntimeError(f"no SUBACK for {topic}")


def publish_all(endpoint: Endpoint, user: str, messages: Iterable[tuple[str, bytes]]) -> int:
    """Publish at QoS 1 as fast as the broker takes them; return once all are acknowledged."""
    client = endpoint.client(user, f"bench-loader-{secrets.token_hex(4)}", max_inflight=100)
    acked = 0
    sent = 0
    lock = threading.Condition()

    def on_publish(c: Any, u: Any, mid: int, reason: Any, props: Any) -> None:
        nonlocal acked
        with lock:
            acked += 1
            lock.notify_all()

    client.on_publish = on_publish

    def room() -> bool:
        return sent - acked < 1000

    for topic, payload in messages:
        with lock:
            lock.wait_for(room, timeout=30)
        info = client.publish(topic, payload, qos=1)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise RuntimeError(f"publish failed: rc={info.rc}")
        sent += 1
    with lock:
        if not lock.wait_for(lambda: acked >= sent, timeout=120):
            raise RuntimeError(f"only {acked} of {sent} publishes acknowledged")
    close(client)
    return sent


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll every millisecond until ``predicate()``; raise after the timeout."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out: {what}")
        time.sleep(0.001)


@dataclass
class Result:
    """One benchmark figure: samples of farmwatch and of its baseline, measured in one run."""

    number: str
    name: str
    unit: str
    samples: list[float]
    baseline_name: str = ""
    baseline: list[float] = field(default_factory=list)
    target: str = ""
    check: Callable[[Result], bool] | None = None
    """Whether the target is met (None: no target)."""

    @property
    def median(self) -> float:
        """Median of farmwatch's samples."""
        return statistics.median(self.samples)

    @property
    def baseline_median(self) -> float:
        """Median of the baseline's samples (NaN without a baseline)."""
        return statistics.median(self.baseline) if self.baseline else float("nan")

    @property
    def ratio(self) -> float:
        """Medians, farmwatch / baseline."""
        return self.median / self.baseline_median if self.baseline else float("nan")

    @property
    def met(self) -> str:
        """``yes``, ``NO`` or empty (no target)."""
        if self.check is None:
            return ""
        return "yes" if self.check(self) else "NO"


def spread(samples: list[float]) -> str:
    """Range of the samples relative to their median, e.g. ``±4%`` (half the min–max span)."""
    if len(samples) < 2:
        return "n=1"
    mid = statistics.median(samples)
    if mid == 0:
        return "–"
    return f"±{(max(samples) - min(samples)) / 2 / abs(mid) * 100:.0f}%"


def figure(value: float) -> str:
    """A number with sensible precision."""
    if value != value:
        return "–"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"
