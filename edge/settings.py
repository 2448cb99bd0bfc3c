"""Edge agent settings: environment variables ``FARMWATCH_EDGE_*`` plus the farm file."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from edge.batching import max_uncompressed_readings
from edge.uplink import COMMIT_TIMEOUT_MAX_S
from farmwatch_shared.envsettings import EnvSettings
from farmwatch_shared.hub.layout import HubLimits
from farmwatch_shared.hub.settings import HubSettings
from farmwatch_shared.mqtt import MqttEndpoint
from farmwatch_shared.settings import MqttSettings, Port, is_loopback_host, read_secret_file


class LorawanBrokerSettings(BaseModel):
    """The LoRaWAN network server's MQTT broker (ChirpStack's Mosquitto, The Things Stack's MQTT
    server): where the agent subscribes to its integration events (docs/lorawan.md)."""

    lorawan_mqtt_host: str | None = None
    """Unset: the farm file's LoRaWAN devices are not read (the agent and ``--check-config``
    say so)."""
    lorawan_mqtt_port: Port = 1883
    lorawan_mqtt_username: str | None = None
    """ChirpStack: a Mosquitto user allowed to read ``application/#``; The Things Stack:
    ``<application id>@<tenant>``."""
    lorawan_mqtt_password: SecretStr | None = None
    """The Things Stack: an API key with the application's "read traffic" right."""
    lorawan_mqtt_password_file: Path | None = None
    lorawan_mqtt_tls_ca_file: Path | None = None
    """CA certificate(s): connect with TLS (for The Things Stack's cloud, the system's CA
    bundle, ``/etc/ssl/certs/ca-certificates.crt``, on port 8883)."""
    lorawan_session_expiry_s: int = Field(default=7 * 24 * 3600, ge=0)
    """How long the broker keeps the agent's session (and the events it queues) while the
    agent is away (MQTT 5; a 3.1.1 broker keeps it as it chooses)."""
    lorawan_receive_maximum: int = Field(default=20, ge=1, le=1000)
    """Events the broker sends before the agent acknowledged them."""

    @model_validator(mode="after")
    def _lorawan_password_from_file(self) -> LorawanBrokerSettings:
        if self.lorawan_mqtt_password is not None and self.lorawan_mqtt_password_file is not None:
            raise ValueError("set lorawan_mqtt_password or lorawan_mqtt_password_file, not both")
        if self.lorawan_mqtt_password_file is not None:
            self.lorawan_mqtt_password = read_secret_file(self.lorawan_mqtt_password_file)
        return self

    def lorawan_endpoint(self, client_id: str) -> MqttEndpoint | None:
        """The network server's broker, or None when none is configured."""
        if self.lorawan_mqtt_host is None:
            return None
        return MqttEndpoint(
            host=self.lorawan_mqtt_host,
            port=self.lorawan_mqtt_port,
            client_id=client_id,
            username=self.lorawan_mqtt_username,
            password=self.lorawan_mqtt_password,
            tls_ca_file=self.lorawan_mqtt_tls_ca_file,
        )

    def lorawan_cleartext_warning(self) -> str | None:
        """A warning when the network server's password travels in plain text over a network."""
        host = self.lorawan_mqtt_host
        if host is None or self.lorawan_mqtt_tls_ca_file is not None or is_loopback_host(host):
            return None
        return (
            f"MQTT sin TLS hacia el servidor LoRaWAN {host}:{self.lorawan_mqtt_port} / MQTT "
            f"without TLS to the LoRaWAN network server {host}:{self.lorawan_mqtt_port}: its "
            "password travels in plain text (set lorawan_mqtt_tls_ca_file)"
        )


class EdgeSettings(EnvSettings, MqttSettings, LorawanBrokerSettings, HubSettings):
    """Everything the agent needs besides the farm file's sensor definitions (read without
    pydantic-settings: the Pi's memory, ``farmwatch_shared/envsettings.py``)."""

    env_prefix: ClassVar[str] = "FARMWATCH_EDGE_"
    model_config = ConfigDict(extra="forbid")

    farm_file: Path
    """This farm's file, installed as ``/etc/farmwatch/farms/<farm>.toml``; register maps it
    names are looked up in ``register_maps/`` beside it first, then among the shipped ones."""
    agent_id: str | None = None
    serial_port: str | None = None
    """Overrides the farm file's port (e.g. a /dev/serial/by-id path or an emulator's pty)."""
    outbox_path: Path = Path("/var/lib/farmwatch/outbox.sqlite3")
    outbox_max_readings: int = Field(default=2_000_000, ge=1)
    batch_max_readings: int = Field(default=200, ge=1, le=5000)
    batch_max_age_s: float = Field(default=1200.0, gt=0)
    """How long readings wait for their batch when nothing is urgent (edge/urgency.py): each
    message costs TLS records, TCP/IP headers and acknowledgements on a paid link. It must be
    10 minutes shorter than the farm's ``silent`` rule for this agent (checked at start)."""
    urgent_fall_pct: float | None = Field(default=10.0, gt=0)
    """A water level that fell this many points since the last reading the server has is
    sent at once (a ``level_falling_faster`` rule of the sensor may set a smaller fall)."""
    compress: bool = True
    payload_version: int = Field(default=2, ge=1, le=2)
    """Reading batches in contract v2 (dense binary, always compressed) or v1 (JSON); v2 needs
    a collector and alerting service of this release or later (docs/contract.md)."""
    max_packet_bytes: int = Field(default=256 * 1024, ge=4096, le=268_435_455)
    """Largest MQTT packet the broker accepts (Mosquitto's ``max_packet_size``, 300000 in
    deploy/mosquitto, with headroom): batches are cut by encoded size to fit it."""
    commit_timeout_s: float = Field(default=300.0, gt=0, le=COMMIT_TIMEOUT_MAX_S)
    """A batch the broker acknowledged but the collector has not confirmed stored after this
    long is sent again (then after 2×, 4×… up to an hour)."""
    inflight_window: int = Field(default=8, ge=1, le=1000)
    status_interval_s: float = Field(default=21600.0, gt=0)
    """Refresh of the retained status when it has no news (it is also sent on every connect,
    with the next batch when it has news, and at a clean stop: ``edge/status_schedule.py``);
    the batches are the agent's sign of life in between (docs/performance.md, figure 5)."""
    mqtt_keepalive_s: int = Field(default=1800, ge=5, le=65535)
    """With nothing else to send the agent pings this often, and the broker drops it (last
    will) after 1.5 times as long without a word. Longer than the batch age: the batches keep
    the link alive, no ping is sent, and the link is idle at most a batch age (20 minutes); a
    carrier whose NAT forgets idle connections sooner needs a shorter one, at 204 bytes a ping
    (docs/deploy.md, "Cellular links")."""
    nats_ping_interval_s: float = Field(default=1800.0, gt=0)
    """On the hub: nats-py pings the node this often whatever else the agent sends (212 bytes
    on the wire each); the batches keep a NAT's mapping alive, and a dead link shows on the
    next batch (its publish is not acknowledged, TCP gives up). Three unanswered pings and the
    agent reconnects: a node that stopped answering is left after 2 hours at this interval
    (docs/scale-out.md, "Cellular links"). The services keep 10 s."""
    nats_presence_ttl_s: float = Field(default=HubLimits().presence_ttl_s, gt=0)
    """On the hub: the presence bucket's TTL as ``farmwatch-hub apply --presence-ttl-s`` set
    it (4500 s). The agent does not send it; start-up and ``--check-config`` refuse a
    ``nats_presence_interval_s`` that is not below half of it (one put that did not arrive
    would read as the agent offline)."""
    clock_check: Literal["plausible", "ntp"] = "plausible"
    """"ntp" on a Pi without a real-time clock (what deploy/install-edge.sh sets): hold readings
    until NTP synchronised the clock (systemd-timesyncd or the kernel say so), since
    fake-hwclock restores a stale but plausible time after a power cut; "plausible" only
    refuses a time before this release."""
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _batches_fit(self) -> EdgeSettings:
        fits = max_uncompressed_readings(self.max_packet_bytes)
        if not self.compress and self.batch_max_readings > fits:
            raise ValueError(
                f"compress=false: {self.batch_max_readings} readings (batch_max_readings) do "
                f"not fit in one message of max_packet_bytes={self.max_packet_bytes}; at most "
                f"{fits} do: lower batch_max_readings or set compress=true"
            )
        return self

    @model_validator(mode="after")
    def _presence_outlives_a_lost_put(self) -> EdgeSettings:
        interval, ttl = self.nats_presence_interval_s, self.nats_presence_ttl_s
        if self.transport == "jetstream" and 2 * interval >= ttl:
            raise ValueError(
                f"nats_presence_interval_s={interval:g} con nats_presence_ttl_s={ttl:g}: el "
                "agente se vería fuera de línea con una presencia perdida / the agent would "
                "read as offline after one lost presence put: the interval must be below half "
                f"the bucket's TTL (farmwatch-hub apply --presence-ttl-s), under {ttl / 2:g} s"
            )
        return self
