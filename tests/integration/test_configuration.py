"""Configuration: documented, validated, and failing fast with a clear message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.paths import FARM_FILES, REPO

from collector.settings import CollectorSettings
from edge.settings import EdgeSettings
from farmwatch_shared.farm.model import FarmConfigError, load_farm_config


@pytest.mark.parametrize(
    ("settings", "prefix"),
    [(EdgeSettings, "FARMWATCH_EDGE_"), (CollectorSettings, "FARMWATCH_COLLECTOR_")],
)
def test_every_setting_is_documented(settings: type, prefix: str) -> None:
    docs = (REPO / "docs" / "configuration.md").read_text()
    for name in settings.model_fields:  # type: ignore[attr-defined]
        assert f"`{prefix}{name.upper()}`" in docs, name


def test_the_shipped_farm_files_are_valid() -> None:
    farms = [load_farm_config(path) for path in sorted(FARM_FILES.glob("*.toml"))]
    assert len(farms) == 3
    assert all(farm.sensors for farm in farms)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[farm]\nid = 'Bad Id'\nname='x'\n[[agents]]\nid='pi-1'\n", "farm.id"),
        ("[farm]\nid = 'f'\nname='x'\n", "agents"),
        ("not toml = = =", "not valid TOML"),
        (
            "[farm]\nid='f'\nname='x'\n[[agents]]\nid='pi-1'\n[[sensors]]\nid='s'\nagent='pi-2'\n"
            "channel='S1'\nkind='soil_moisture'\ncoefficients=[0.0]\n",
            "unknown agent pi-2",
        ),
        (
            "[farm]\nid='f'\nname='x'\n[[agents]]\nid='pi-1'\n[[sensors]]\nid='s'\nagent='pi-1'\n"
            "channel='S1'\nkind='rain'\nbucket_mm=-1\n",
            "bucket_mm",
        ),
    ],
)
def test_a_bad_farm_file_fails_with_a_clear_message(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "farm.toml"
    path.write_text(text)
    with pytest.raises(FarmConfigError, match=message):
        load_farm_config(path)


def run_cli(module: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FARMWATCH_")}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env={**clean, **env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,  # the test reads the return code
    )


def test_check_config_accepts_a_good_configuration_and_never_prints_secrets(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cr3t-value\n")
    edge = run_cli(
        "edge.cli",
        {
            "FARMWATCH_EDGE_FARM_FILE": str(FARM_FILES / "oax-istmo.toml"),
            "FARMWATCH_EDGE_MQTT_PASSWORD_FILE": str(secret),
        },
        "--check-config",
    )
    assert edge.returncode == 0, edge.stderr
    assert "oax-istmo" in edge.stdout
    assert "5 sensors" in edge.stdout
    collector = run_cli(
        "collector.cli",
        {
            "FARMWATCH_COLLECTOR_MQTT_PASSWORD": "s3cr3t-value",
            "FARMWATCH_COLLECTOR_FARM_DIR": str(FARM_FILES),
        },
        "--check-config",
    )
    assert collector.returncode == 0, collector.stderr
    assert "3 farms" in collector.stdout
    assert "oax-istmo" in collector.stdout
    for result in (edge, collector):
        assert "s3cr3t" not in result.stdout + result.stderr


def test_bad_settings_fail_fast_with_exit_code_2(tmp_path: Path) -> None:
    missing = run_cli("edge.cli", {}, "--check-config")
    assert missing.returncode == 2
    assert "farm_file" in missing.stderr
    bad_port = run_cli("collector.cli", {"FARMWATCH_COLLECTOR_MQTT_PORT": "many"}, "--check-config")
    assert bad_port.returncode == 2
    assert "mqtt_port" in bad_port.stderr
    v2_without_token = run_cli(
        "collector.cli", {"FARMWATCH_COLLECTOR_INFLUX_API": "v2"}, "--check-config"
    )
    assert v2_without_token.returncode == 2
    assert "influx_token" in v2_without_token.stderr
    both = run_cli(
        "collector.cli",
        {"FARMWATCH_COLLECTOR_MQTT_PASSWORD": "a", "FARMWATCH_COLLECTOR_MQTT_PASSWORD_FILE": "/x"},
        "--check-config",
    )
    assert both.returncode == 2
    unknown = run_cli(
        "edge.cli", {"FARMWATCH_EDGE_FARM_FILE": str(tmp_path / "nope.toml")}, "--check-config"
    )
    assert unknown.returncode == 2
    assert "cannot read" in unknown.stderr
    no_farms = run_cli(
        "collector.cli", {"FARMWATCH_COLLECTOR_FARM_DIR": str(tmp_path)}, "--check-config"
    )
    assert no_farms.returncode == 2
    assert "no farm files" in no_farms.stderr


def test_help_is_bilingual() -> None:
    for module in ("edge.cli", "collector.cli"):
        result = run_cli(module, {}, "--help")
        assert result.returncode == 0
        assert "--check-config" in result.stdout
        assert "/" in result.stdout
