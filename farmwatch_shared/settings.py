"""Settings pieces shared by the services: MQTT connection and secrets from env or files."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, SecretStr, model_validator

from farmwatch_shared.mqtt import MqttEndpoint


def read_secret_file(path: Path) -> SecretStr:
    """Read a secret from a file (first line, whitespace stripped)."""
    text = path.read_text(encoding="utf-8").strip()
    return SecretStr(text.splitlines()[0] if text else "")


class MqttSettings(BaseModel):
    """MQTT connection settings; the password comes from the environment or a file."""

    mqtt_host: str = "localhost"
    mqtt_port: int = 1883
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    mqtt_password_file: Path | None = None
    mqtt_tls_ca_file: Path | None = None

    @model_validator(mode="after")
    def _password_from_file(self) -> MqttSettings:
        if self.mqtt_password is not None and self.mqtt_password_file is not None:
            raise ValueError("set mqtt_password or mqtt_password_file, not both")
        if self.mqtt_password_file is not None:
            self.mqtt_password = read_secret_file(self.mqtt_password_file)
        return self

    def mqtt_endpoint(self, client_id: str) -> MqttEndpoint:
        """The broker endpoint these settings describe."""
        return MqttEndpoint(
            host=self.mqtt_host,
            port=self.mqtt_port,
            client_id=client_id,
            username=self.mqtt_username,
            password=self.mqtt_password,
            tls_ca_file=self.mqtt_tls_ca_file,
        )
