"""Edge agent settings: environment variables ``FARMWATCH_EDGE_*`` plus the farm file."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from farmwatch_shared.settings import MqttSettings


class EdgeSettings(BaseSettings, MqttSettings):
    """Everything the agent needs besides the farm file's sensor definitions."""

    model_config = SettingsConfigDict(env_prefix="FARMWATCH_EDGE_", extra="forbid")

    farm_file: Path
    """This farm's file, installed as ``/etc/farmwatch/farms/<farm>.toml``; register maps it
    names are looked up in ``register_maps/`` beside it first, then among the shipped ones."""
    agent_id: str | None = None
    serial_port: str | None = None
    """Overrides the farm file's port (e.g. a /dev/serial/by-id path or an emulator's pty)."""
    outbox_path: Path = Path("/var/lib/farmwatch/outbox.sqlite3")
    outbox_max_readings: int = Field(default=2_000_000, ge=1)
    batch_max_readings: int = Field(default=200, ge=1, le=5000)
    batch_max_age_s: float = Field(default=60.0, gt=0)
    compress: bool = True
    inflight_window: int = Field(default=8, ge=1, le=1000)
    status_interval_s: float = Field(default=300.0, gt=0)
    clock_check: Literal["plausible", "ntp"] = "plausible"
    """"ntp" on a Pi without a real-time clock: hold readings until NTP synchronised the clock
    (systemd-timesyncd or the kernel say so); "plausible" only refuses a time before this
    release."""
    log_level: str = "INFO"
