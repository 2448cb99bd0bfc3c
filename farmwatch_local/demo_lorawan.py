"""The demo's LoRaWAN part: a second Mosquitto standing in for the network server's broker
(ChirpStack's on the ranch's gateway), the emulated network server publishing the uplinks of
each farm's LoRaWAN devices there (``FarmLorawan``, following the farm's scenario), and the
settings that make the farm's real edge agent subscribe to it (docs/lorawan.md).

The broker has its own users and ACL, as on a gateway: the network server's user may only
write the integration topics, the agent's user may only read them.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from farmwatch_emulators.lorawan import FarmLorawan, MqttPublisher
from farmwatch_emulators.scenario import DroughtScenario
from farmwatch_local.services import MosquittoServer
from farmwatch_shared.farm.model import FarmConfig
from farmwatch_shared.mqtt import MqttEndpoint

NS_PUBLISHER = "network-server"
"""The network server's MQTT user (ChirpStack's integration)."""
NS_READER = "farmwatch-lorawan"
"""The agents' MQTT user on the network server's broker."""
NS_ACL = f"""# the network server's broker (demo): ChirpStack v4 and The Things Stack v3 topics
user {NS_PUBLISHER}
topic write application/#
topic write v3/#

user {NS_READER}
topic read application/#
topic read v3/#
"""
UPLINK_EVERY_SIM_S = 20 * 60
"""A battery sensor uplinks every 20 simulated minutes (the farm file's rules count on it)."""


@dataclass
class FarmRadio:
    """One farm's emulated LoRaWAN devices and the MQTT client they publish through."""

    devices: FarmLorawan
    publisher: MqttPublisher

    def stop(self) -> None:
        """Stop uplinking and disconnect."""
        self.devices.stop()
        self.publisher.stop()


class NetworkServer:
    """The network server's broker, with a generated password for each of its two users
    (the reader's in ``secrets``, mode 600, for the agents' ``*_PASSWORD_FILE``)."""

    def __init__(self, data: Path, secrets_dir: Path) -> None:
        self._publisher_password = secrets.token_urlsafe(18)
        reader_password = secrets.token_urlsafe(18)
        self.reader_password_file = secrets_dir / f"{NS_READER}.password"
        self.reader_password_file.touch(mode=0o600)
        self.reader_password_file.chmod(0o600)
        self.reader_password_file.write_text(reader_password + "\n")
        data.mkdir(parents=True, exist_ok=True)
        acl = data / "network-server.acl"
        acl.write_text(NS_ACL)
        self.broker = MosquittoServer(
            data_dir=data / "mosquitto",
            users={NS_PUBLISHER: self._publisher_password, NS_READER: reader_password},
            acl_path=acl,
        )

    def start(self) -> None:
        """Start the broker."""
        self.broker.start()

    def stop(self) -> None:
        """Stop the broker."""
        self.broker.stop()

    def agent_env(self) -> dict[str, str]:
        """The agent's settings that make it subscribe to this broker."""
        return {
            "FARMWATCH_EDGE_LORAWAN_MQTT_HOST": "127.0.0.1",
            "FARMWATCH_EDGE_LORAWAN_MQTT_PORT": str(self.broker.port),
            "FARMWATCH_EDGE_LORAWAN_MQTT_USERNAME": NS_READER,
            "FARMWATCH_EDGE_LORAWAN_MQTT_PASSWORD_FILE": str(self.reader_password_file),
        }

    def farm_radio(
        self,
        config: FarmConfig,
        agent_id: str,
        scenario: DroughtScenario,
        sim_time: Callable[[], float],
        speedup: float,
    ) -> FarmRadio | None:
        """The emulated devices of one agent of a farm (connected, not yet uplinking), or
        None if it has none."""
        devices = config.lorawan_devices_of(agent_id)
        if not devices:
            return None
        endpoint = MqttEndpoint(
            "127.0.0.1",
            self.broker.port,
            f"network-server-{config.farm.id}",
            NS_PUBLISHER,
            SecretStr(self._publisher_password),
        )
        publisher = MqttPublisher(endpoint, FarmLorawan.protocol(devices)).start()
        lorawan = FarmLorawan(
            config,
            agent_id,
            scenario,
            sim_time,
            publisher,
            interval_s=UPLINK_EVERY_SIM_S / speedup,
        )
        return FarmRadio(lorawan, publisher)


def lorawan_line(server: NetworkServer | None, radios: list[FarmRadio]) -> list[str]:
    """The view's line about the emulated network server."""
    if server is None:
        return []
    count = sum(len(radio.devices.devices) for radio in radios)
    return [
        f"LoRaWAN: {count} sensores por el servidor de red emulado / sensors through the "
        f"emulated network server (ChirpStack), mqtt://127.0.0.1:{server.broker.port}"
    ]
