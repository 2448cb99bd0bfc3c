"""The collector's settings are validated one by one and against each other, and
``--check-config`` catches everything start-up would (issue 11, findings 24 and 25)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from support.paths import COLLECTOR_USER, FARM_FILES

from collector.cli import main
from collector.settings import CollectorSettings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("FARMWATCH_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("FARMWATCH_COLLECTOR_FARM_DIR", str(FARM_FILES))
    monkeypatch.setenv("FARMWATCH_COLLECTOR_QUARANTINE_PATH", str(tmp_path / "q.sqlite3"))
    monkeypatch.setenv("FARMWATCH_COLLECTOR_MQTT_USERNAME", COLLECTOR_USER)


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:0",
        "http://localhost:-1",
        "http://localhost:65536",
        "http://localhost:port",
        "localhost:18086",
        "ftp://localhost:18086",
        "http://:18086",
    ],
)
def test_an_influx_url_without_a_usable_host_and_port_is_refused(url: str) -> None:
    with pytest.raises(ValidationError, match="influx_url"):
        CollectorSettings(influx_url=url)


@pytest.mark.parametrize(
    "url", ["http://localhost:18086", "https://db.example.org", "http://[::1]:1"]
)
def test_usable_influx_urls_are_accepted(url: str) -> None:
    assert CollectorSettings(influx_url=url).influx_url == url


def test_settings_that_contradict_each_other_are_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    with pytest.raises(ValidationError, match="not both"):
        CollectorSettings(
            influx_password=SecretStr("a"), influx_password_file=secret, influx_username="u"
        )
    with pytest.raises(ValidationError, match="not both"):
        CollectorSettings(influx_api="v2", influx_token=SecretStr("a"), influx_token_file=secret)
    with pytest.raises(ValidationError, match="influx_username"):
        CollectorSettings(influx_password_file=secret)


def test_check_config_catches_what_start_up_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Finding 25: a quarantine file start-up could not open, an unreadable secret or CA
    file, a port out of range: each fails ``--check-config`` (exit 2) as it would the start."""
    assert main(["--check-config"]) == 0
    assert "created at start" in capsys.readouterr().out
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"x" * 4096)
    ca = tmp_path / "ca.crt"
    ca.write_text("not a certificate\n")
    cases = {
        "QUARANTINE_PATH": (str(tmp_path / "nowhere" / "q.sqlite3"), "does not exist"),
        "INFLUX_PASSWORD_FILE": (str(tmp_path / "missing.pw"), "missing.pw"),
        "MQTT_PASSWORD_FILE": (str(tmp_path / "missing-mqtt.pw"), "missing-mqtt.pw"),
        "MQTT_TLS_CA_FILE": (str(ca), "configuration error"),
        "INFLUX_URL": ("http://localhost:65536", "influx_url"),
    }
    for name, (value, message) in cases.items():
        with monkeypatch.context() as patch:
            patch.setenv(f"FARMWATCH_COLLECTOR_{name}", value)
            patch.setenv("FARMWATCH_COLLECTOR_INFLUX_USERNAME", "farmwatch")
            assert main(["--check-config"]) == 2, name
        assert message in capsys.readouterr().err, name
    monkeypatch.setenv("FARMWATCH_COLLECTOR_QUARANTINE_PATH", str(garbage))
    assert main(["--check-config"]) == 2
    assert "garbage.sqlite3" in capsys.readouterr().err
