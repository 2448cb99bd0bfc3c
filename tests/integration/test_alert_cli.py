"""``farmwatch-alerts``: help, configuration check, history, and the split of farms among
several alerter instances."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.paths import FARM_FILES, FARMS, REPO

from collector.alerts.cli import main
from collector.alerts.service import owns_farm
from collector.alerts.settings import AlertSettings
from collector.alerts.store import AlertStore
from farmwatch_shared.clock import SystemClock

TOKEN = "api-token-0123456789abcdef"


def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **values: str) -> None:
    for key in list(os.environ):
        if key.startswith("FARMWATCH_ALERTS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("FARMWATCH_ALERTS_FARM_DIR", str(FARM_FILES))
    monkeypatch.setenv("FARMWATCH_ALERTS_STATE_DB", str(tmp_path / "alerts.sqlite3"))
    for key, value in values.items():
        monkeypatch.setenv(f"FARMWATCH_ALERTS_{key.upper()}", value)


def test_help_runs_as_a_console_script() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "farmwatch-alerts"), "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert "FARMWATCH_ALERTS_MODEM_PORT" in result.stdout
    assert "--check-config" in result.stdout


def test_check_config_lists_the_farms_and_channels(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    api_token = tmp_path / "api-token"
    api_token.write_text("s3cret-api-token-0123456789\n")
    _env(
        monkeypatch,
        tmp_path,
        modem_port="/dev/ttyUSB2",
        gateway_url="https://api.example.test",
        gateway_account_sid="AC123",
        gateway_auth_token_file=str(token),
        gateway_from="+15005550006",
        api_token_file=str(api_token),
    )
    assert main(["--check-config"]) == 0
    out = capsys.readouterr().out
    assert "channels modem → http" in out
    assert "API http://127.0.0.1:8471 (bearer token)" in out
    for farm in FARMS:
        assert f"  {farm}: " in out
    assert "s3cret" not in out


def test_check_config_refuses_without_a_channel_or_with_a_bad_farm_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _env(monkeypatch, tmp_path)
    assert main(["--check-config"]) == 2
    assert "configure an SMS channel" in capsys.readouterr().err
    farms = tmp_path / "farms"
    farms.mkdir()
    text = (FARM_FILES / "oax-istmo.toml").read_text()
    (farms / "oax-istmo.toml").write_text(text.replace('phone = "+529710000001"', 'phone = "971"'))
    _env(monkeypatch, tmp_path, modem_port="/dev/ttyUSB2", farm_dir=str(farms), api_listen="")
    assert main(["--check-config"]) == 2
    assert "contacts.0.phone" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        ({}, "needs api_token_file"),  # the API is on by default
        ({"api_token": "short"}, "16+ characters"),
        ({"api_listen": "0.0.0.0:8471", "api_token": TOKEN}, "not a loopback address"),
        ({"api_listen": "[::]:8471", "api_token": TOKEN}, "not a loopback address"),
        ({"api_listen": "alerts.example.org:8471", "api_token": TOKEN}, "loopback"),
        ({"api_listen": "127.0.0.1", "api_token": TOKEN}, "host:port"),
        ({"api_listen": "127.0.0.1:99999", "api_token": TOKEN}, "host:port"),
        ({"api_token": TOKEN, "api_tls_cert": "/nonexistent.crt"}, "together"),
        (
            {"api_token": TOKEN, "api_tls_cert": "/nonexistent.crt", "api_tls_key": "/x.key"},
            "No such file",
        ),
    ],
)
def test_check_config_refuses_an_api_without_token_or_tls_off_loopback(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    settings: dict[str, str],
    error: str,
) -> None:
    _env(monkeypatch, tmp_path, modem_port="/dev/ttyUSB2", **settings)
    assert main(["--check-config"]) == 2
    err = capsys.readouterr().err
    assert error in err
    assert TOKEN not in err


def test_check_config_accepts_the_api_off_on_ipv6_loopback_and_with_tls(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _env(monkeypatch, tmp_path, modem_port="/dev/ttyUSB2", api_listen="")
    assert main(["--check-config"]) == 0
    assert "API off" in capsys.readouterr().out
    _env(monkeypatch, tmp_path, modem_port="/dev/ttyUSB2", api_listen="[::1]:9000", api_token=TOKEN)
    assert main(["--check-config"]) == 0
    assert "API http://[::1]:9000 (bearer token)" in capsys.readouterr().out
    certs = tmp_path / "certs"
    subprocess.run(
        ["sh", str(REPO / "deploy" / "mosquitto" / "make-tls-certs.sh"), str(certs), "alerts.lan"],
        check=True,
        capture_output=True,
    )
    tls = {"api_tls_cert": str(certs / "server.crt"), "api_tls_key": str(certs / "server.key")}
    _env(
        monkeypatch,
        tmp_path,
        modem_port="/dev/ttyUSB2",
        api_listen="0.0.0.0:8471",
        api_token=TOKEN,
        **tls,
    )
    assert main(["--check-config"]) == 0
    assert "API https://0.0.0.0:8471 (bearer token)" in capsys.readouterr().out
    # a key that is not the certificate's
    other = tmp_path / "other"
    subprocess.run(
        ["sh", str(REPO / "deploy" / "mosquitto" / "make-tls-certs.sh"), str(other), "x.lan"],
        check=True,
        capture_output=True,
    )
    tls["api_tls_key"] = str(other / "server.key")
    _env(monkeypatch, tmp_path, modem_port="/dev/ttyUSB2", api_token=TOKEN, **tls)
    assert main(["--check-config"]) == 2
    assert "configuration error" in capsys.readouterr().err


def test_history_prints_events_and_sms(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _env(monkeypatch, tmp_path, modem_port="/dev/ttyUSB2", api_listen="")
    store = AlertStore(tmp_path / "alerts.sqlite3", SystemClock())
    store.add_event(1_795_000_000_000, "oax-istmo", "trough-long-low", 4, "pending", "firing", 21.5)
    store.enqueue_sms("k", "oax-istmo", "+529710000001", "ALERTA 4 ...", "firing", 4, 1)
    store.close()
    assert main(["--history", "oax-istmo"]) == 0
    out = capsys.readouterr().out
    assert "oax-istmo trough-long-low #4 pending → firing 21.50" in out
    assert "…0001 pending via -" in out


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_every_farm_has_exactly_one_owner(count: int) -> None:
    for farm in (*FARMS, "farm-a", "farm-b", "x"):
        assert sum(owns_farm(farm, i, count) for i in range(count)) == 1


def test_every_setting_is_documented() -> None:
    docs = (REPO / "docs" / "alerts.md").read_text()
    for name in AlertSettings.model_fields:
        assert f"`{name.upper()}`" in docs, name
