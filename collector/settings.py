"""Collector settings: environment variables ``FARMWATCH_COLLECTOR_*``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from farmwatch_shared.farm.directory import DEFAULT_FARM_DIR
from farmwatch_shared.hub.settings import HubSettings
from farmwatch_shared.settings import MqttSettings, load_secret_files, one_source_per_secret

DEFAULT_QUARANTINE_PATH = Path("/var/lib/farmwatch/collector-quarantine.sqlite3")
"""In the service's state directory (``StateDirectory=farmwatch`` of its systemd unit)."""


class CollectorSettings(BaseSettings, MqttSettings, HubSettings):
    """Farm files, broker subscription, database output and batching."""

    model_config = SettingsConfigDict(env_prefix="FARMWATCH_COLLECTOR_", extra="forbid")

    farm_dir: Path = DEFAULT_FARM_DIR
    """Directory of the farm files (``*.toml``) of every farm this collector receives."""
    client_id: str = "farmwatch-collector"
    session_expiry_s: int = Field(default=7 * 24 * 3600, ge=0)
    receive_maximum: int = Field(default=1000, ge=1, le=65535)
    """Unacknowledged messages the broker may send us: the backpressure bound (in the hub:
    the messages this collector holds unacknowledged)."""
    batch_max_points: int = Field(default=5000, ge=1)
    quarantine_path: Path = DEFAULT_QUARANTINE_PATH
    """SQLite file keeping every refused message whole (``--replay-quarantine``)."""
    quarantine_max_mb: int = Field(default=1024, ge=1)
    """Payload megabytes the quarantine holds at most; beyond, refused readings are not
    confirmed (their agents keep them and send them again)."""

    influx_api: Literal["v1", "v2"] = "v1"
    influx_url: str = "http://localhost:8086"
    influx_database: str = "farmwatch"
    influx_retention_policy: str = ""
    influx_username: str | None = None
    influx_password: SecretStr | None = None
    influx_password_file: Path | None = None
    influx_create_database: bool = True
    influx_token: SecretStr | None = None
    influx_token_file: Path | None = None
    influx_org: str = "farmwatch"
    influx_bucket: str = "farmwatch"

    log_level: str = "INFO"
    stats_interval_s: float = Field(default=60.0, gt=0)

    @field_validator("influx_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http:// or https:// URL with a host")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"{url!r}: the port is not a number from 1 to 65535") from None
        if port == 0:
            raise ValueError(f"{url!r}: the port is not a number from 1 to 65535")
        return url

    @model_validator(mode="before")
    @classmethod
    def _one_source_per_secret(cls, data: Any) -> Any:
        return one_source_per_secret(data, ("influx_password", "influx_token"))

    @model_validator(mode="after")
    def _secrets_from_files(self) -> CollectorSettings:
        load_secret_files(self, ("influx_password", "influx_token"))
        if self.influx_api == "v2" and self.influx_token is None:
            raise ValueError("influx_api v2 needs influx_token or influx_token_file")
        if self.influx_password is not None and self.influx_username is None:
            raise ValueError("influx_password is set but influx_username is not")
        return self
