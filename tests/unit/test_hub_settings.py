"""The hub transport's settings (issue 15): MQTT stays the default and reads none of them; the
hub needs its nodes' URLs, takes the password from a file, and warns about plain text."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from collector.alerts.settings import AlertSettings
from collector.settings import CollectorSettings
from edge.settings import EdgeSettings
from farmwatch_shared.hub.layout import HubLimits

FARM = Path("farm.toml")


def test_mqtt_is_the_default_and_needs_no_hub() -> None:
    assert EdgeSettings(farm_file=FARM).transport == "mqtt"
    assert CollectorSettings().transport == "mqtt"
    assert EdgeSettings(farm_file=FARM).nats_cleartext_warning() is None


def test_the_hub_needs_the_nodes_urls(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="no NATS server URL"):
        EdgeSettings(farm_file=FARM, transport="jetstream")
    with pytest.raises(ValidationError, match="nats://host:port or tls://host:port"):
        CollectorSettings(transport="jetstream", nats_servers="http://hub1:4222")
    password = tmp_path / "pw"
    password.write_text("s3cret\n")
    settings = EdgeSettings(
        farm_file=FARM,
        transport="jetstream",
        nats_servers="tls://hub1:4222, tls://hub2:4222,tls://hub3:4222",
        nats_username="oax-mixteca",
        nats_password_file=password,
    )
    endpoint = settings.nats_endpoint("edge")
    assert endpoint.servers == ("tls://hub1:4222", "tls://hub2:4222", "tls://hub3:4222")
    assert endpoint.password is not None
    assert endpoint.password.get_secret_value() == "s3cret"
    assert endpoint.inbox_prefix == "_INBOX_oax-mixteca"
    assert settings.nats_cleartext_warning() is None
    with pytest.raises(ValidationError, match="not both"):
        CollectorSettings(
            transport="jetstream",
            nats_servers="tls://hub1:4222",
            nats_password=SecretStr("x"),
            nats_password_file=password,
        )


def test_plain_text_to_a_remote_node_is_warned_about() -> None:
    settings = EdgeSettings(
        farm_file=FARM, transport="jetstream", nats_servers="nats://127.0.0.1:4222,nats://hub2:4222"
    )
    warning = settings.nats_cleartext_warning()
    assert warning is not None
    assert "nats://hub2:4222" in warning
    assert "127.0.0.1" not in warning


def test_the_alerting_service_on_the_hub_needs_the_nodes_too() -> None:
    with pytest.raises(ValidationError, match="no NATS server URL"):
        AlertSettings(modem_port="/dev/ttyUSB2", api_listen="", transport="jetstream")
    settings = AlertSettings(
        modem_port="/dev/ttyUSB2", api_listen="", transport="jetstream", nats_servers="tls://h:1"
    )
    assert settings.nats_endpoint("alerts").servers == ("tls://h:1",)


def test_an_agent_pings_the_hub_rarely_and_the_services_often() -> None:
    url = "tls://hub1:4222"
    edge = EdgeSettings(farm_file=FARM, transport="jetstream", nats_servers=url)
    assert edge.nats_endpoint("edge").ping_interval_s == 1800
    collector = CollectorSettings(transport="jetstream", nats_servers=url)
    assert collector.nats_endpoint("collector").ping_interval_s == 10
    alerts = AlertSettings(
        modem_port="/dev/ttyUSB2", api_listen="", transport="jetstream", nats_servers=url
    )
    assert alerts.nats_endpoint("alerts").ping_interval_s == 10
    custom = EdgeSettings(
        farm_file=FARM, transport="jetstream", nats_servers=url, nats_ping_interval_s=240
    )
    assert custom.nats_endpoint("edge").ping_interval_s == 240


def test_the_presence_ttl_outlasts_a_lost_presence_put() -> None:
    shipped = EdgeSettings(farm_file=FARM, transport="jetstream", nats_servers="tls://h:1")
    assert shipped.nats_presence_ttl_s == HubLimits().presence_ttl_s  # what `apply` creates
    assert 2 * shipped.nats_presence_interval_s < shipped.nats_presence_ttl_s
    with pytest.raises(ValidationError, match="under 2250 s"):
        EdgeSettings(
            farm_file=FARM,
            transport="jetstream",
            nats_servers="tls://h:1",
            nats_presence_interval_s=2250,
        )
    with pytest.raises(ValidationError, match="nats_presence_ttl_s=180"):  # the old bucket
        EdgeSettings(
            farm_file=FARM, transport="jetstream", nats_servers="tls://h:1", nats_presence_ttl_s=180
        )
    hourly = EdgeSettings(
        farm_file=FARM,
        transport="jetstream",
        nats_servers="tls://h:1",
        nats_presence_interval_s=3600,
        nats_presence_ttl_s=9000,
    )
    assert hourly.nats_presence_interval_s == 3600
    mqtt = EdgeSettings(farm_file=FARM, nats_presence_interval_s=3600)  # not read on MQTT
    assert mqtt.transport == "mqtt"
