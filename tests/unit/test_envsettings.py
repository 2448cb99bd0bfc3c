"""``EnvSettings`` reads the edge's ``FARMWATCH_EDGE_*`` variables as pydantic-settings did,
without importing it (the Pi's memory)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from edge.settings import EdgeSettings
from farmwatch_shared.envsettings import EnvSettings

FARM_FILE = Path(__file__).resolve().parents[2] / "firmware_configs" / "oax-mixteca.toml"


class Sample(EnvSettings):
    """Fields of every kind the edge uses."""

    env_prefix = "FARMWATCH_TEST_"

    path: Path = Path("/nowhere")
    count: int = Field(default=1, ge=1)
    ratio: float = 0.5
    flag: bool = False
    name: str | None = None
    secret: SecretStr | None = None
    items: list[int] = Field(default_factory=list)


class Reference(BaseSettings):
    """The same fields under pydantic-settings."""

    model_config = SettingsConfigDict(env_prefix="FARMWATCH_TEST_")

    path: Path = Path("/nowhere")
    count: int = Field(default=1, ge=1)
    ratio: float = 0.5
    flag: bool = False
    name: str | None = None
    secret: SecretStr | None = None
    items: list[int] = Field(default_factory=list)


def test_the_environment_is_read_as_pydantic_settings_reads_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in {
        "FARMWATCH_TEST_PATH": "/etc/farmwatch/x.toml",
        "farmwatch_test_count": "7",
        "FARMWATCH_TEST_RATIO": "2.5",
        "FARMWATCH_TEST_FLAG": "yes",
        "FARMWATCH_TEST_NAME": "",
        "FARMWATCH_TEST_SECRET": "s3cret",
        "FARMWATCH_TEST_ITEMS": "[1, 2, 3]",
        "FARMWATCH_TEST_UNKNOWN": "ignored",
    }.items():
        monkeypatch.setenv(key, value)
    ours, theirs = Sample(), Reference()
    assert ours.model_dump() == theirs.model_dump()
    assert ours.count == 7
    assert ours.flag is True
    assert ours.items == [1, 2, 3]
    assert Sample(count=3).count == 3  # keyword arguments win


def test_a_bad_value_from_the_environment_is_a_validation_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FARMWATCH_TEST_COUNT", "0")
    with pytest.raises(ValidationError):
        Sample()


def test_the_edge_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FARMWATCH_EDGE_FARM_FILE", str(FARM_FILE))
    monkeypatch.setenv("FARMWATCH_EDGE_BATCH_MAX_AGE_S", "120")
    monkeypatch.setenv("FARMWATCH_EDGE_MQTT_KEEPALIVE_S", "240")
    monkeypatch.setenv("FARMWATCH_EDGE_PAYLOAD_VERSION", "1")
    settings = EdgeSettings()  # type: ignore[call-arg]  # farm_file from the environment
    assert settings.farm_file == FARM_FILE
    assert settings.batch_max_age_s == 120
    assert settings.payload_version == 1
    assert settings.mqtt_endpoint("x").keepalive_s == 240
    with pytest.raises(ValidationError):
        EdgeSettings(no_such_setting=1)  # type: ignore[call-arg]
