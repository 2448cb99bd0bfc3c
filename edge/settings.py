"""Edge agent settings: environment variables ``FARMWATCH_EDGE_*`` plus the farm file."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import ConfigDict, Field, model_validator

from edge.batching import max_uncompressed_readings
from edge.uplink import COMMIT_TIMEOUT_MAX_S
from farmwatch_shared.envsettings import EnvSettings
from farmwatch_shared.settings import MqttSettings


class EdgeSettings(EnvSettings, MqttSettings):
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
    status_interval_s: float = Field(default=3600.0, gt=0)
    """Refresh of the retained status (also sent on every connect and at a clean stop); the
    batches are the agent's sign of life in between (docs/performance.md, figure 5)."""
    mqtt_keepalive_s: int = Field(default=1800, ge=5, le=65535)
    """With nothing else to send the agent pings this often, and the broker drops it (last
    will) after 1.5 times as long without a word. Longer than the batch age: the batches keep
    the link alive, no ping is sent, and the link is idle at most a batch age (20 minutes); a
    carrier whose NAT forgets idle connections sooner needs a shorter one, at 204 bytes a ping
    (docs/deploy.md, "Cellular links")."""
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
