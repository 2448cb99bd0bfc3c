"""Settings pieces shared by the services: MQTT connection and secrets from env or files."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Field, SecretStr, model_validator

from farmwatch_shared.mqtt import MqttEndpoint


def read_secret_file(path: Path) -> SecretStr:
    """Read a secret from a file (first line, whitespace stripped)."""
    text = path.read_text(encoding="utf-8").strip()
    return SecretStr(text.splitlines()[0] if text else "")


def one_source_per_secret(data: Any, names: Iterable[str]) -> Any:
    """The body of a ``mode="before"`` validator: refuse a secret ``<name>`` given both directly
    and as ``<name>_file``. Checked on the raw input because a ``mode="after"`` validator of a
    BaseSettings may run twice (``model_validate``), the second time with the secret already
    read from its file."""
    if isinstance(data, dict):
        for name in names:
            if data.get(name) is not None and data.get(f"{name}_file") is not None:
                raise ValueError(f"set {name} or {name}_file, not both")
    return data


def load_secret_files(settings: BaseModel, names: Iterable[str]) -> None:
    """Set each secret ``<name>`` of ``settings`` from ``<name>_file`` where that is given."""
    for name in names:
        path = getattr(settings, f"{name}_file")
        if path is not None:
            setattr(settings, name, read_secret_file(path))


Port = Annotated[int, Field(ge=1, le=65535)]
"""A TCP port: 1–65535 (0 would mean "any free port", not a broker)."""


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` names this machine (``localhost`` or a loopback address); other names
    are not resolved, so they count as remote."""
    name = host.strip().rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


class MqttSettings(BaseModel):
    """MQTT connection settings; the password comes from the environment or a file."""

    mqtt_host: str = "localhost"
    mqtt_port: Port = 1883
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    mqtt_password_file: Path | None = None
    mqtt_tls_ca_file: Path | None = None
    mqtt_keepalive_s: int = Field(default=30, ge=5, le=65535)
    """MQTT keepalive: with no other traffic the client pings this often, and the broker drops
    a client silent for 1.5 times as long (its last will is published)."""

    @model_validator(mode="before")
    @classmethod
    def _one_password_source(cls, data: Any) -> Any:
        return one_source_per_secret(data, ("mqtt_password",))

    @model_validator(mode="after")
    def _password_from_file(self) -> MqttSettings:
        load_secret_files(self, ("mqtt_password",))
        return self

    def cleartext_warning(self) -> str | None:
        """A warning when these settings send the password in plain text over a network (a
        broker that is not on this machine, without TLS); None otherwise."""
        if self.mqtt_tls_ca_file is not None or is_loopback_host(self.mqtt_host):
            return None
        return (
            f"MQTT sin TLS hacia {self.mqtt_host}:{self.mqtt_port}: la contraseña viaja en claro "
            f"/ MQTT without TLS to {self.mqtt_host}:{self.mqtt_port}: the password travels in "
            "plain text (set mqtt_tls_ca_file and port 8883)"
        )

    def mqtt_endpoint(self, client_id: str) -> MqttEndpoint:
        """The broker endpoint these settings describe."""
        return MqttEndpoint(
            host=self.mqtt_host,
            port=self.mqtt_port,
            client_id=client_id,
            username=self.mqtt_username,
            password=self.mqtt_password,
            tls_ca_file=self.mqtt_tls_ca_file,
            keepalive_s=self.mqtt_keepalive_s,
        )
