"""Secrets from the environment or a file, one way for every service's settings
(farmwatch_shared.settings: one_source_per_secret, load_secret_files)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from collector.alerts.settings import AlertSettings
from collector.web.settings import WebSettings
from farmwatch_shared.settings import MqttSettings


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret"
    path.write_text("from-the-file-0123456789\n")
    return path


def test_a_secret_file_is_read_and_kept_secret(secret: Path) -> None:
    settings = MqttSettings(mqtt_password_file=secret)
    assert settings.mqtt_password is not None
    assert settings.mqtt_password.get_secret_value() == "from-the-file-0123456789"
    assert "from-the-file" not in repr(settings)


def test_model_validate_of_settings_with_a_secret_file_is_not_both(secret: Path) -> None:
    """``model_validate`` of a BaseSettings may run its "after" validator twice, the second
    time with the secret already read from its file: that is not "both"."""
    alerts = AlertSettings.model_validate({"modem_port": "/dev/ttyUSB2", "api_token_file": secret})
    assert alerts.api_token is not None
    assert alerts.api_token.get_secret_value() == "from-the-file-0123456789"
    web = WebSettings.model_validate(
        {"alerts_api_urls": ["http://127.0.0.1:8471"], "alerts_api_token_file": secret}
    )
    assert web.alerts_api_token == alerts.api_token


@pytest.mark.parametrize(
    ("model", "name", "extra"),
    [
        (MqttSettings, "mqtt_password", {}),
        (AlertSettings, "api_token", {"modem_port": "/dev/ttyUSB2"}),
        (AlertSettings, "influx_password", {"modem_port": "/dev/ttyUSB2", "api_listen": ""}),
        (WebSettings, "alerts_api_token", {"alerts_api_urls": ["http://127.0.0.1:8471"]}),
    ],
)
def test_a_secret_given_both_directly_and_as_a_file_is_refused(
    secret: Path, model: type[MqttSettings], name: str, extra: dict[str, object]
) -> None:
    with pytest.raises(ValidationError, match=f"set {name} or {name}_file, not both"):
        model.model_validate(
            {name: SecretStr("direct-0123456789abcdef"), f"{name}_file": secret, **extra}
        )
