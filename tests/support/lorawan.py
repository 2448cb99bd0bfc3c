"""A LoRaWAN network server standing in for ChirpStack or The Things Stack: a second real
Mosquitto (the server's broker) that the emulated network server publishes integration events
to, a real ``farmwatch-edge`` process subscribed to it, and a real ``farmwatch-collector``."""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from collector.influx_setup import RetentionPlan, apply
from farmwatch_emulators.lorawan import MqttPublisher, Network, NetworkServerEmulator
from farmwatch_local.services import MosquittoServer
from farmwatch_shared.influx import InfluxV1Writer
from farmwatch_shared.mqtt import (
    MQTT_V5,
    MQTT_V311,
    Delivery,
    DeliveryHandler,
    MqttEndpoint,
    PublishInfo,
)
from support.harness import ChildProcess, agent_process, collector_process, write_secret
from support.servers import Broker, Influx
from support.waiting import wait_for

FARM = "chis-frailesca"
CHIRPSTACK_APP = "6b0ab6c4-3a5f-4e0c-9d61-2f3b7c1d9e10"
TTS_APP = "rancho-frailesca@ttn"
NS_PUBLISHER, NS_READER = "chirpstack", "farmwatch-lorawan"
NS_ACL = f"""
user {NS_PUBLISHER}
topic write application/#
topic write v3/#

user {NS_READER}
topic read application/#
topic read v3/#
"""
DEVICES = {  # name → (DevEUI, The Things Stack device id)
    "trough-node": ("a84041000181c0d1", "eui-a84041000181c0d1"),
    "soil-node": ("a840410000181c2e", "eui-a840410000181c2e"),
    "tank-node": ("24e124136b316041", "em500-swl-tank"),
}


def farm_file(network: Network) -> str:
    """A farm whose agent reads only LoRaWAN sensors: an ultrasonic trough (Dragino LDDS75), a
    soil probe (Dragino LSE01) and a submersible tank level (Milesight EM500-SWL)."""
    application = CHIRPSTACK_APP if network == "chirpstack" else TTS_APP
    codecs = {
        "trough-node": "dragino_ldds75",
        "soil-node": "dragino_lse01",
        "tank-node": "milesight_em500_swl",
    }
    devices = "".join(
        f"""
[[lorawan_devices]]
id = "{name}"
agent = "pi-1"
network = "{network}"
application = "{application}"
dev_eui = "{dev_eui}"
{f'device_id = "{device_id}"' if network == "tts" else ""}
codec = "{codecs[name]}"
"""
        for name, (dev_eui, device_id) in DEVICES.items()
    )
    return f"""
[farm]
id = "{FARM}"
name = "LoRaWAN"

[[agents]]
id = "pi-1"
{devices}
[[sensors]]
id = "trough"
agent = "pi-1"
channel = "L1"
kind = "water_level"
transducer = {{ type = "ultrasonic", mount_height_mm = 900 }}
vessel = {{ shape = "rectangular", length_mm = 2500, width_mm = 700, height_mm = 550 }}
source = {{ lorawan = "trough-node", point = "distance_mm" }}

[[sensors]]
id = "soil"
agent = "pi-1"
channel = "L2"
kind = "soil_moisture"
coefficients = [0.0, 1.0]
source = {{ lorawan = "soil-node", point = "moisture_pct" }}

[[sensors]]
id = "tank"
agent = "pi-1"
channel = "L3"
kind = "water_level"
transducer = {{ type = "depth", sensor_elevation_mm = 50 }}
vessel = {{ shape = "vertical_cylinder", diameter_mm = 2000, height_mm = 2000 }}
source = {{ lorawan = "tank-node", point = "depth_mm" }}
"""


@contextmanager
def network_server_broker(tmp_path: Path) -> Iterator[Broker]:
    """The network server's own Mosquitto (persistent, as Debian's and ChirpStack's are): the
    network server publishes there, the agent reads there."""
    passwords = {user: secrets.token_hex(12) for user in (NS_PUBLISHER, NS_READER)}
    acl = tmp_path / "network-server.acl"
    acl.write_text(NS_ACL)
    server = MosquittoServer(data_dir=tmp_path / "ns-mosquitto", users=passwords, acl_path=acl)
    server.start()
    try:
        yield Broker(server, passwords)
    finally:
        server.stop()


@dataclass
class LorawanRig:
    """The running pieces; ``server`` publishes what the network server would."""

    network: Network
    ns: Broker
    agent: ChildProcess
    collector: ChildProcess
    server: NetworkServerEmulator
    publisher: MqttPublisher
    outbox: Path

    def wait_agent_subscribed(self) -> None:
        topics = 3 if self.network == "chirpstack" else 2
        wait_for(
            lambda: f"Suscrito / subscribed ({topics} topics)" in self.agent.log(),
            timeout_s=30,
            what="the agent subscribed to the network server",
        )

    def restart_agent(self) -> None:
        """Start the agent process again and wait until both its sessions (the farm broker's,
        the network server's) are connected and subscribed: a session the broker kept keeps
        its subscriptions and is not subscribed again."""
        start = len(self.agent.log())

        def ready() -> bool:
            log = self.agent.log()[start:]
            fresh = log.count("(session present: False)")
            return log.count("connected to broker") >= 2 and log.count("subscribed (") >= fresh

        self.agent.start()
        wait_for(ready, timeout_s=30, what="the restarted agent connected and subscribed")

    def alive(self) -> bool:
        """Whether the agent process is running."""
        return self.agent.process is not None and self.agent.process.poll() is None

    def quarantined(self) -> list[tuple[str, str]]:
        """(cause, detail) of what the agent quarantined (its outbox, read while it runs)."""
        with sqlite3.connect(self.outbox, timeout=10) as db:
            rows = db.execute("SELECT cause, detail FROM quarantine ORDER BY id").fetchall()
        return [(str(cause), str(detail)) for cause, detail in rows]


@contextmanager
def running_lorawan(
    broker: Broker, influx: Influx, tmp_path: Path, network: Network = "chirpstack"
) -> Iterator[LorawanRig]:
    """Network server broker, collector, agent (subscribed) and the emulated network server;
    the database with its retention policies (the dashboards read ``raw``)."""
    path = tmp_path / "lorawan-farm.toml"
    path.write_text(farm_file(network))
    with network_server_broker(tmp_path) as ns:
        secret = write_secret(tmp_path / "lorawan.pw", ns.passwords[NS_READER])
        agent = agent_process(
            broker,
            path,
            "/dev/null-unused",  # the agent has no microcontroller sensor: no port is opened
            tmp_path,
            FARM,
            lorawan_mqtt_host="127.0.0.1",
            lorawan_mqtt_port=str(ns.port),
            lorawan_mqtt_username=NS_READER,
            lorawan_mqtt_password_file=str(secret),
            status_interval_s="1",
        )
        collector = collector_process(broker, influx.url, influx.database, tmp_path)
        protocol = MQTT_V5 if network == "chirpstack" else MQTT_V311
        publisher = MqttPublisher(
            MqttEndpoint(
                "127.0.0.1",
                ns.port,
                f"network-server-{secrets.token_hex(3)}",
                NS_PUBLISHER,
                SecretStr(ns.passwords[NS_PUBLISHER]),
            ),
            protocol,
        )
        application = CHIRPSTACK_APP if network == "chirpstack" else TTS_APP
        server = NetworkServerEmulator(
            network, application, publisher, qos=1 if network == "chirpstack" else 0
        )
        for name, (dev_eui, device_id) in DEVICES.items():
            server.add(name, dev_eui, device_id)
        rig = LorawanRig(
            network, ns, agent, collector, server, publisher, tmp_path / "edge-outbox.sqlite3"
        )
        writer = InfluxV1Writer(influx.url, influx.database)
        apply(lambda q: writer.query(q, method="POST"), RetentionPlan(database=influx.database))
        try:
            collector.start()
            wait_for(lambda: "Suscrito / subscribed" in collector.log(), what="collector")
            agent.start()
            rig.wait_agent_subscribed()
            publisher.start()
            yield rig
        finally:
            publisher.stop()
            agent.stop()
            collector.stop()


class NoBroker:
    """The reader's consumer, never connected: the unit tests call ``handle`` themselves."""

    connected = False
    subscribed = threading.Event()

    def wait_connected(self, timeout_s: float) -> bool:
        return False

    def start(self, on_delivery: DeliveryHandler) -> None:
        raise AssertionError("no broker in the unit lane")

    def stop(self, timeout_s: float = 5.0) -> None:
        """Nothing to stop."""

    def ack(self, delivery: Delivery) -> None:
        raise AssertionError("handle does not acknowledge")

    def publish(
        self, topic: str, payload: bytes, qos: int = 1, retain: bool = False
    ) -> PublishInfo:
        raise AssertionError("the reader publishes nothing")


def now_ms() -> int:
    """The wall clock, in ms."""
    return time.time_ns() // 1_000_000
