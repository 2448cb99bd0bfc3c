"""Alerting service settings: environment variables ``FARMWATCH_ALERTS_*``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from collector.alerts.modem_profiles import profile_choice
from farmwatch_shared.farm.directory import DEFAULT_FARM_DIR
from farmwatch_shared.hub.settings import HubSettings
from farmwatch_shared.settings import (
    MqttSettings,
    is_loopback_host,
    load_secret_files,
    one_source_per_secret,
)

_LISTEN = re.compile(r"(?:\[([0-9A-Fa-f:.]+)\]|([^:\[\]\s]+)):([0-9]{1,5})")
MIN_TOKEN_CHARS = 16
SECRETS = ("gateway_auth_token", "influx_password", "api_token")
"""Each may come from ``<name>_file`` instead."""
"""A shorter API token is refused (``secrets.token_urlsafe(32)`` makes one of 43)."""


class AlertSettings(BaseSettings, MqttSettings, HubSettings):
    """Where the farm files, the state and the SMS channels are."""

    model_config = SettingsConfigDict(env_prefix="FARMWATCH_ALERTS_", extra="forbid")

    farm_dir: Path = DEFAULT_FARM_DIR
    """Directory of farm files (``*.toml``): rules and contacts."""
    state_db: Path = Path("/var/lib/farmwatch/alerts.sqlite3")
    client_id: str = "farmwatch-alerts"
    session_expiry_s: int = Field(default=7 * 24 * 3600, ge=0)
    instance_index: int = Field(default=0, ge=0)
    instance_count: int = Field(default=1, ge=1)
    """Farms are split among ``instance_count`` alerters by a hash of the farm id."""
    lease_ttl_s: float = Field(default=30.0, gt=1)
    hub_pin_ttl_s: float = Field(default=15.0, gt=1)
    """On the hub: stop sending when the hub did not answer this long; keep it below the
    consumer's priority timeout (``farmwatch-hub apply --alerts-pinned-ttl-s``, 20 s), after
    which the server pins a standby."""
    hub_heartbeat_s: float = Field(default=5.0, gt=0)
    """On the hub: how often this process publishes a heartbeat on the stream (a pin moves
    only with a message)."""

    modem_port: str | None = None
    """Serial device of the GSM modem, e.g. /dev/serial/by-id/usb-SIMCOM…-if02."""
    modem_baudrate: int = 115200
    modem_command_timeout_s: float = Field(default=5.0, gt=0)
    modem_send_timeout_s: float = Field(default=60.0, gt=0)
    modem_cnmi: str | None = Field(default=None, pattern=r"^[0-3](,[0-3]){0,4}$")
    """``AT+CNMI`` parameters: ``2,1,0,0,0`` store and announce (+CMTI), ``2,2,0,0,0`` route
    received SMS straight to us (+CMT); unset: the modem profile's (``2,1,0,0,0``)."""
    modem_profile: str = "auto"
    """``auto`` (detected from ``AT+CGMM``), or one of ``modem_profiles.PROFILES``:
    ``classic-2g``, ``simcom-lte``, ``quectel-lte``, ``generic-3gpp``."""
    modem_health_s: float = Field(default=300.0, gt=0)
    """How often registration and signal are checked and written (``modem_health``)."""

    gateway_url: str | None = None
    """Base URL of a Twilio-shaped HTTP SMS API, e.g. https://api.twilio.com."""
    gateway_account_sid: str = ""
    gateway_auth_token: SecretStr | None = None
    gateway_auth_token_file: Path | None = None
    gateway_from: str = ""

    retry_initial_s: float = Field(default=30.0, gt=0)
    retry_max_s: float = Field(default=900.0, gt=0)

    influx_url: str | None = None
    """InfluxDB 1.x for the alert history (``alert_event``, ``sms_sent``); unset: SQLite only."""
    influx_database: str = "farmwatch"
    influx_username: str | None = None
    influx_password: SecretStr | None = None
    influx_password_file: Path | None = None

    api_listen: str = "127.0.0.1:8471"
    """``host:port`` of the alerting API (``[v6]:port`` for IPv6), through which the web
    application reads incidents and acknowledges them; empty: no API."""
    api_token: SecretStr | None = None
    """Bearer token every API request must carry (required while the API is on)."""
    api_token_file: Path | None = None
    api_tls_cert: Path | None = None
    """PEM certificate (chain) of the API; with ``api_tls_key`` the API speaks HTTPS only.
    Required when ``api_listen`` is not a loopback address."""
    api_tls_key: Path | None = None

    log_level: str = "INFO"

    @model_validator(mode="before")
    @classmethod
    def _one_source_per_secret(cls, data: Any) -> Any:
        return one_source_per_secret(data, SECRETS)

    @model_validator(mode="after")
    def _check(self) -> AlertSettings:
        load_secret_files(self, SECRETS)
        if self.instance_index >= self.instance_count:
            raise ValueError("instance_index must be below instance_count")
        if self.gateway_url is not None and (
            not self.gateway_account_sid or self.gateway_auth_token is None or not self.gateway_from
        ):
            raise ValueError(
                "gateway_url needs gateway_account_sid, gateway_auth_token(_file) and gateway_from"
            )
        profile_choice(self.modem_profile)  # ValueError names the valid profiles
        if self.modem_port is None and self.gateway_url is None:
            raise ValueError("configure an SMS channel: modem_port and/or gateway_url")
        self._check_api()
        return self

    def _check_api(self) -> None:
        if (self.api_tls_cert is None) != (self.api_tls_key is None):
            raise ValueError("set api_tls_cert and api_tls_key together")
        address = self.api_address()
        if address is None:
            return
        if self.api_token is None or len(self.api_token.get_secret_value()) < MIN_TOKEN_CHARS:
            raise ValueError(
                f"the API (api_listen {self.api_listen}) needs api_token_file with a token of "
                f"{MIN_TOKEN_CHARS}+ characters; set api_listen to empty to turn the API off"
            )
        if self.api_tls_cert is None and not is_loopback_host(address[0]):
            raise ValueError(
                f"api_listen {self.api_listen} is not a loopback address: set api_tls_cert and "
                "api_tls_key (HTTPS), or listen on 127.0.0.1 behind a TLS reverse proxy"
            )

    def api_address(self) -> tuple[str, int] | None:
        """(host, port) the API listens on; None when it is off. Raise ValueError for an
        address that is not ``host:port``."""
        text = self.api_listen.strip()
        if not text:
            return None
        m = _LISTEN.fullmatch(text)
        if m is None or not 1 <= int(m.group(3)) <= 65535:
            raise ValueError(f"api_listen must be host:port or [v6]:port (port 1-65535): {text!r}")
        return m.group(1) or m.group(2), int(m.group(3))
