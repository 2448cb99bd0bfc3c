"""Settings are validated one by one and against each other (issue 11 findings 7, 21, 24, 25)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from support.paths import REPO

from collector.settings import CollectorSettings
from edge.batching import largest_reading_bytes, max_uncompressed_readings
from edge.settings import EdgeSettings
from farmwatch_shared.contract import MAX_PAYLOAD_BYTES
from farmwatch_shared.settings import MqttSettings, is_loopback_host


@pytest.mark.parametrize("port", [0, -1, 65536])
def test_impossible_ports_are_refused_for_the_agent_and_the_collector(port: int) -> None:
    with pytest.raises(ValidationError, match="mqtt_port"):
        EdgeSettings(farm_file=Path("farm.toml"), mqtt_port=port)
    with pytest.raises(ValidationError, match="mqtt_port"):
        CollectorSettings(mqtt_port=port)


def test_ports_at_both_ends_are_fine() -> None:
    assert EdgeSettings(farm_file=Path("farm.toml"), mqtt_port=1).mqtt_port == 1
    assert CollectorSettings(mqtt_port=65535).mqtt_port == 65535


def test_uncompressed_batches_must_fit_the_packet_limit_at_their_largest() -> None:
    fits = max_uncompressed_readings(256 * 1024)
    assert fits * largest_reading_bytes() < MAX_PAYLOAD_BYTES
    EdgeSettings(farm_file=Path("farm.toml"), compress=False, batch_max_readings=fits)
    with pytest.raises(ValidationError, match="compress=false"):
        EdgeSettings(farm_file=Path("farm.toml"), compress=False, batch_max_readings=fits + 1)
    with pytest.raises(ValidationError, match="compress=false"):
        EdgeSettings(
            farm_file=Path("farm.toml"),
            compress=False,
            batch_max_readings=200,
            max_packet_bytes=16 * 1024,
        )
    # compressed batches are cut by size at publish time: any batch_max_readings may stand
    EdgeSettings(farm_file=Path("farm.toml"), batch_max_readings=5000)


def test_cleartext_is_warned_about_only_for_a_remote_broker_without_tls() -> None:
    assert is_loopback_host("localhost")
    assert is_loopback_host("127.0.0.1")
    assert is_loopback_host("::1")
    assert not is_loopback_host("broker.example.org")
    assert not is_loopback_host("10.1.2.3")
    remote = MqttSettings(mqtt_host="broker.example.org")
    assert remote.cleartext_warning() is not None
    assert "plain text" in str(remote.cleartext_warning())
    tls = MqttSettings(mqtt_host="broker.example.org", mqtt_tls_ca_file=Path("/etc/ca.crt"))
    assert tls.cleartext_warning() is None
    assert MqttSettings(mqtt_host="127.0.0.1").cleartext_warning() is None


def test_the_shipped_pi_settings_use_tls_and_wait_for_ntp(monkeypatch: pytest.MonkeyPatch) -> None:
    """Findings 18 and 21: what deploy/install-edge.sh writes into /etc/farmwatch/edge.env."""
    example = REPO / "deploy" / "env" / "edge.env.example"
    for line in example.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, value = line.split("=", 1)
            monkeypatch.setenv(key, value.replace("__FARM__", "oax-mixteca"))
    monkeypatch.delenv("FARMWATCH_EDGE_MQTT_PASSWORD_FILE")  # installed later, not here
    shipped = EdgeSettings()  # type: ignore[call-arg]  # farm_file etc. from the environment
    assert shipped.clock_check == "ntp"
    assert shipped.mqtt_port == 8883
    assert shipped.mqtt_tls_ca_file == Path("/etc/farmwatch/ca.crt")
    assert shipped.cleartext_warning() is None
    script = (REPO / "deploy" / "install-edge.sh").read_text()
    assert "FARMWATCH_EDGE_CLOCK_CHECK=ntp" in script  # also added to a kept edge.env
    assert "TLS_CA" in script
