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
    _env(
        monkeypatch,
        tmp_path,
        modem_port="/dev/ttyUSB2",
        gateway_url="https://api.example.test",
        gateway_account_sid="AC123",
        gateway_auth_token_file=str(token),
        gateway_from="+15005550006",
    )
    assert main(["--check-config"]) == 0
    out = capsys.readouterr().out
    assert "channels modem → http" in out
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
    _env(monkeypatch, tmp_path, modem_port="/dev/ttyUSB2", farm_dir=str(farms))
    assert main(["--check-config"]) == 2
    assert "contacts.0.phone" in capsys.readouterr().err


def test_history_prints_events_and_sms(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _env(monkeypatch, tmp_path, modem_port="/dev/ttyUSB2")
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
