"""``farmwatch-edge --check-config`` fails exactly as start-up would: it builds everything start-up
builds from the configuration; and the agent warns when its password would travel in clear."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.harness import ChildProcess
from support.paths import REPO

FARM = """
[farm]
id = "oax-test"
name = "Prueba"

[[agents]]
id = "pi-1"

[[sensors]]
id = "soil-20cm"
agent = "pi-1"
channel = "S1"
kind = "soil_moisture"
coefficients = [0.0, 0.01]
"""
# one instant in two spellings: 12:00 UTC is 06:00 at UTC-6 (Oaxaca, Chiapas)
TWO_CALIBRATIONS_AT_ONE_INSTANT = (
    FARM
    + """
[[calibrations]]
sensor = "soil-20cm"
effective_from = 2026-05-01T12:00:00Z
curve = { type = "polynomial", coefficients = [0.0, 0.011] }

[[calibrations]]
sensor = "soil-20cm"
effective_from = 2026-05-01T06:00:00-06:00
curve = { type = "polynomial", coefficients = [0.0, 0.012] }
"""
)


def edge_env(tmp_path: Path, farm_text: str, **settings: str) -> dict[str, str]:
    farm_file = tmp_path / "farm.toml"
    farm_file.write_text(farm_text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARMWATCH_")}
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "FARMWATCH_EDGE_FARM_FILE": str(farm_file),
            "FARMWATCH_EDGE_OUTBOX_PATH": str(tmp_path / "outbox.sqlite3"),
            "FARMWATCH_EDGE_SERIAL_PORT": str(tmp_path / "no-such-tty"),
        }
    )
    env.update({f"FARMWATCH_EDGE_{k.upper()}": v for k, v in settings.items()})
    return env


def edge(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_two_calibrations_at_one_instant_in_two_time_zones_fail_the_check_as_start_up(
    tmp_path: Path,
) -> None:
    env = edge_env(tmp_path, TWO_CALIBRATIONS_AT_ONE_INSTANT)
    check = edge(env, "--check-config")
    start = edge(env)
    for result in (check, start):
        assert result.returncode == 2, result.stdout + result.stderr
        assert "two records take effect at one instant" in result.stderr
        assert "Traceback" not in result.stderr


def test_check_config_builds_the_broker_session_so_a_missing_ca_file_fails_it(
    tmp_path: Path,
) -> None:
    env = edge_env(
        tmp_path,
        FARM,
        mqtt_host="broker.example.org",
        mqtt_port="8883",
        mqtt_tls_ca_file=str(tmp_path / "missing-ca.crt"),
    )
    result = edge(env, "--check-config")
    assert result.returncode == 2, result.stdout
    assert "missing-ca.crt" in result.stderr or "No such file" in result.stderr


@pytest.mark.parametrize("port", ["0", "-1", "65536"])
def test_impossible_broker_ports_are_refused(tmp_path: Path, port: str) -> None:
    result = edge(edge_env(tmp_path, FARM, mqtt_port=port), "--check-config")
    assert result.returncode == 2
    assert "mqtt_port" in result.stderr


def test_uncompressed_batches_that_cannot_fit_a_packet_are_refused(tmp_path: Path) -> None:
    env = edge_env(tmp_path, FARM, compress="false", batch_max_readings="5000")
    result = edge(env, "--check-config")
    assert result.returncode == 2
    assert "compress=false" in result.stderr
    assert "at most 1378" in result.stderr
    fits = edge(
        edge_env(tmp_path, FARM, compress="false", batch_max_readings="1000"), "--check-config"
    )
    assert fits.returncode == 0, fits.stderr


def test_plain_mqtt_to_a_remote_broker_is_warned_about_a_loopback_one_is_not(
    tmp_path: Path,
) -> None:
    remote = edge(edge_env(tmp_path, FARM, mqtt_host="broker.example.org"), "--check-config")
    assert remote.returncode == 0, remote.stderr
    assert "the password travels in plain text" in remote.stdout
    for settings in ({"mqtt_host": "127.0.0.1"}, {"mqtt_host": "localhost"}):
        local = edge(edge_env(tmp_path, FARM, **settings), "--check-config")
        assert local.returncode == 0, local.stderr
        assert "plain text" not in local.stdout


def test_the_agent_warns_once_at_start_when_its_password_would_travel_in_clear(
    tmp_path: Path,
) -> None:
    # TEST-NET-1: never answers
    env = edge_env(tmp_path, FARM, mqtt_host="192.0.2.1", mqtt_port="18830")
    agent = ChildProcess([sys.executable, "-m", "edge.cli"], env, tmp_path / "edge.log")
    agent.start()
    try:
        deadline = time.monotonic() + 20
        while "Agente iniciado" not in agent.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
    finally:
        agent.stop()
    log = agent.log()
    assert log.count("MQTT sin TLS hacia 192.0.2.1:18830") == 1, log
    assert "the password travels in plain text" in log
