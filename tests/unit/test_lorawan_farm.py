"""LoRaWAN in the farm file, in the agent status (contract, InfluxDB lines, the collector's
check) and for the alerting service's ``silent`` rule."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from support.clocks import FrozenClock, SteppingClock
from support.harness import edge_committer, farm_config
from support.lorawan import NoBroker
from support.paths import FARM_FILES

from collector.alerts.engine import AlertEngine
from collector.alerts.store import AlertStore
from collector.checks import check_message
from edge.lorawan.source import LorawanReader, check_devices
from edge.outbox import Outbox
from edge.settings import LorawanBrokerSettings
from farmwatch_emulators.lorawan import FarmLorawan
from farmwatch_emulators.scenario import HOUR, DroughtScenario
from farmwatch_shared.contract import (
    MAX_DEVICES_PER_STATUS,
    AgentStatus,
    ContractError,
    DeviceHealth,
    Reading,
    ReadingBatch,
    SensorKind,
    decode_status,
    encode_status,
    status_topic,
)
from farmwatch_shared.farm.model import (
    FarmConfig,
    FarmConfigError,
    LorawanSource,
    load_farm_config,
)
from farmwatch_shared.lineprotocol import device_health_lines
from farmwatch_shared.mqtt import Delivery
from farmwatch_shared.problems import ProblemLog

APP = "6b0ab6c4-3a5f-4e0c-9d61-2f3b7c1d9e10"
BASE = """
[farm]
id = "f"
name = "x"

[[agents]]
id = "pi-1"

[[agents]]
id = "pi-2"
"""
DEVICE = f"""
[[lorawan_devices]]
id = "node"
agent = "pi-1"
network = "chirpstack"
application = "{APP}"
dev_eui = "A84041000181C0D1"
codec = "dragino_ldds75"
"""
SENSOR = """
[[sensors]]
id = "trough"
agent = "pi-1"
channel = "L1"
kind = "water_level"
transducer = { type = "ultrasonic", mount_height_mm = 900 }
vessel = { shape = "rectangular", length_mm = 2500, width_mm = 700, height_mm = 550 }
source = { lorawan = "node", point = "distance_mm" }
"""


def load(tmp_path: Path, text: str) -> FarmConfig:
    path = tmp_path / "farm.toml"
    path.write_text(text)
    return load_farm_config(path)


def test_a_lorawan_device_and_its_sensor(tmp_path: Path) -> None:
    farm = load(tmp_path, BASE + DEVICE + SENSOR)
    (device,) = farm.lorawan_devices_of("pi-1")
    assert device.dev_eui == "a84041000181c0d1"  # normalised to lower case, as in topics
    assert farm.lorawan_devices_of("pi-2") == ()
    (sensor,) = farm.sensors
    assert sensor.source == LorawanSource(lorawan="node", point="distance_mm")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (DEVICE.replace('dev_eui = "A84041000181C0D1"\n', ""), "needs its dev_eui"),
        (DEVICE.replace(APP, "my-app"), "lower-case UUID"),
        (DEVICE.replace('dev_eui = "A84041000181C0D1"', 'dev_eui = "A840"'), "dev_eui"),
        (DEVICE.replace('"chirpstack"', '"tts"'), "needs its device_id"),
        (
            DEVICE.replace('"chirpstack"', '"tts"').replace(APP, "rancho")
            + 'device_id = "eui-a8"\n',
            "<application id>@<tenant>",
        ),
        (DEVICE.replace('"dragino_ldds75"', '"object"'), "object_fields"),
        (DEVICE + DEVICE.replace('"node"', '"node-2"'), "share one dev_eui"),
        (DEVICE + DEVICE.replace('agent = "pi-1"', 'agent = "pi-9"'), "ids must be unique"),
        (DEVICE.replace('agent = "pi-1"', 'agent = "pi-9"'), "unknown agent pi-9"),
        (
            DEVICE
            + DEVICE.replace('"node"', '"tts-node"')
            .replace('"chirpstack"', '"tts"')
            .replace(APP, "rancho@ttn")
            + 'device_id = "eui-a8"\n',
            "one network server",
        ),
        (SENSOR, "unknown LoRaWAN device node"),
        (DEVICE.replace('agent = "pi-1"', 'agent = "pi-2"') + SENSOR, "is on agent pi-2"),
    ],
)
def test_bad_lorawan_entries_are_refused_with_a_clear_message(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(FarmConfigError, match=message):
        load(tmp_path, BASE + text)


def test_the_edge_checks_codecs_and_points_before_anything_opens(tmp_path: Path) -> None:
    farm = load(tmp_path, BASE + DEVICE.replace("dragino_ldds75", "dragino_ldds99") + SENSOR)
    with pytest.raises(ValueError, match="no LoRaWAN codec 'dragino_ldds99'"):
        check_devices(farm.lorawan_devices, farm.sensors)
    wrong = load(tmp_path, BASE + DEVICE + SENSOR.replace("distance_mm", "moisture_pct"))
    with pytest.raises(ValueError, match="has no point 'moisture_pct'"):
        check_devices(wrong.lorawan_devices, wrong.sensors)


def test_the_shipped_frailesca_farm_reads_two_lorawan_sensors() -> None:
    farm = load_farm_config(FARM_FILES / "chis-frailesca.toml")
    fed = {s.id: s.source for s in farm.sensors if isinstance(s.source, LorawanSource)}
    assert set(fed) == {"trough-hill", "soil-far"}
    check_devices(farm.lorawan_devices, farm.sensors)


HEALTH = DeviceHealth(
    id="trough-hill-node",
    last_uplink_ts=1_795_000_000_000,
    fcnt=4711,
    rssi_dbm=-112.0,
    snr_db=-4.5,
    battery_v=3.05,
    margin_db=7,
    lost_uplinks=3,
    refused=1,
)


def test_the_status_carries_device_health_and_omits_it_when_there_is_none() -> None:
    plain = AgentStatus(v=1, farm="chis-frailesca", agent="pi-1", state="online", ts=1)
    assert b"devices" not in encode_status(plain)  # what older collectors accept
    status = AgentStatus(
        v=1, farm="chis-frailesca", agent="pi-1", state="online", ts=1, devices=(HEALTH,)
    )
    assert decode_status(encode_status(status)) == status
    with pytest.raises(ContractError, match="schema"):
        decode_status(encode_status(status).replace(b'"fcnt":4711', b'"fcnt":4711,"surprise":1'))
    crowd = AgentStatus(
        v=1,
        farm="f",
        agent="a",
        state="online",
        devices=tuple(DeviceHealth(id=f"d{i}") for i in range(MAX_DEVICES_PER_STATUS + 1)),
    )
    with pytest.raises(ContractError, match="schema"):
        decode_status(encode_status(crowd))


def test_device_health_becomes_one_point_per_device() -> None:
    status = AgentStatus(
        v=1,
        farm="chis-frailesca",
        agent="pi-1",
        state="online",
        ts=1_795_000_300_000,
        devices=(HEALTH, DeviceHealth(id="soil-far-node")),
    )
    assert device_health_lines(status, 0) == [
        "device_health,agent=pi-1,device=trough-hill-node,farm=chis-frailesca battery_v=3.05,"
        "duplicates=0i,fcnt=4711i,last_uplink_ts=1795000000000i,lost_uplinks=3i,margin_db=7i,"
        "refused=1i,rejoins=0i,rssi_dbm=-112,snr_db=-4.5 1795000300000",
        "device_health,agent=pi-1,device=soil-far-node,farm=chis-frailesca duplicates=0i,"
        "lost_uplinks=0i,refused=0i,rejoins=0i 1795000300000",
    ]
    checked = check_message(
        status_topic("chis-frailesca", "pi-1"),
        encode_status(status),
        retained=False,
        farms={"chis-frailesca"},
        now_ms=1_795_000_300_000,
    )
    assert checked.refusal is None
    assert [line.split(",", 1)[0] for line in checked.lines] == [
        "agent_status",
        "device_health",
        "device_health",
    ]


def test_a_silent_rule_fires_for_a_lorawan_sensor_and_resolves_with_late_uplinks(
    tmp_path: Path,
) -> None:
    """The shipped ``trough-hill-silent`` rule: no reading from the LoRaWAN trough for 2 h.
    Uplinks the network server held while the agent was away arrive late, stamped with their
    own network time: the newest of them says the sensor is alive again."""
    config = farm_config("chis-frailesca")
    (rule,) = [r for r in config.alerts if r.id == "trough-hill-silent"]
    config = config.model_copy(update={"alerts": (rule,), "contacts": config.contacts})
    t0 = 1_795_000_000_000
    clock = SteppingClock(t0)
    store = AlertStore(tmp_path / "alerts.sqlite3", clock)
    problems = ProblemLog(logging.getLogger("test.alerts"))
    engine = AlertEngine(store, {"chis-frailesca": config}, clock, problems, "boot-1")

    def uplink(seq: int, ts: int) -> None:
        reading = Reading(seq, "trough-hill", SensorKind.WATER_LEVEL, ts, 60.0, "%", 570.0, 577.5)
        engine.ingest_batch(ReadingBatch(1, "chis-frailesca", "pi-1", [reading]))

    uplink(0, t0)
    for minute in (20, 60, 119):
        clock.now = t0 + minute * 60_000
        engine.tick()
    assert [e["to_state"] for e in store.events("chis-frailesca")] == []
    clock.now = t0 + 121 * 60_000
    engine.tick()
    assert [e["to_state"] for e in store.events("chis-frailesca")] == ["pending", "firing"]
    # the agent reconnects: the uplinks of the last two hours arrive, with their own times
    for seq, minute in enumerate((40, 80, 120), start=1):
        uplink(seq, t0 + minute * 60_000)
    clock.now = t0 + 122 * 60_000
    engine.tick()
    assert [e["to_state"] for e in store.events("chis-frailesca")][-1] == "resolved"
    store.close()


def test_the_emulated_frailesca_devices_uplink_what_the_scenario_says(tmp_path: Path) -> None:
    """What the demo's network server publishes for the shipped farm becomes, through the
    agent's LoRaWAN source, the scenario's trough level and soil moisture."""
    farm = farm_config("chis-frailesca")
    scenario = DroughtScenario()
    sim_s = 8 * HOUR
    published: list[tuple[str, bytes, int]] = []
    emulated = FarmLorawan(
        farm, "pi-1", scenario, lambda: sim_s, lambda *event: published.append(event)
    )
    emulated.uplink_all()
    assert [(topic.split("/")[3], qos) for topic, _, qos in published] == [
        ("a84041000181c0d1", 1),
        ("a840410000181c2e", 1),
    ]
    clock = FrozenClock(1_795_000_000_000)
    problems = ProblemLog(logging.getLogger("test.lorawan"))
    outbox = Outbox(tmp_path / "outbox.sqlite3", 100)
    reader = LorawanReader(
        devices=farm.lorawan_devices,
        sensors=farm.sensors,
        consumer=NoBroker(),
        committer=edge_committer(outbox, clock, problems, farm),
        outbox=outbox,
        clock=clock,
        problems=problems,
        clock_trusted=lambda: True,
    )
    for mid, (topic, payload, qos) in enumerate(published):
        reader.handle(Delivery(mid, qos, topic, payload))
    readings = {r.sensor: r for r in outbox.after(-1, 10)}
    sensors = {s.id: s for s in farm.sensors}
    trough_pct = scenario.state_pct(sensors["trough-hill"], sim_s)
    assert abs(readings["trough-hill"].value - trough_pct) < 0.2  # 1 mm of 550
    soil_pct = scenario.state_pct(sensors["soil-far"], sim_s)
    assert abs(readings["soil-far"].value - soil_pct) < 0.06  # the probe's 0.01 % and rounding
    assert outbox.quarantined() == []
    outbox.close()


def test_the_network_server_broker_settings(tmp_path: Path) -> None:
    assert LorawanBrokerSettings().lorawan_endpoint("c") is None
    key = tmp_path / "tts-api-key"
    key.write_text("NNSXS.SECRET\n")
    tts = LorawanBrokerSettings(
        lorawan_mqtt_host="nam1.cloud.thethings.network",
        lorawan_mqtt_port=8883,
        lorawan_mqtt_username="rancho-frailesca@ttn",
        lorawan_mqtt_password_file=key,
        lorawan_mqtt_tls_ca_file=Path("/etc/ssl/certs/ca-certificates.crt"),
    )
    endpoint = tts.lorawan_endpoint("farmwatch-edge-x-lorawan")
    assert endpoint is not None
    assert endpoint.password is not None
    assert endpoint.password.get_secret_value() == "NNSXS.SECRET"
    assert "SECRET" not in repr(tts)
    assert tts.lorawan_cleartext_warning() is None
    plain = LorawanBrokerSettings(lorawan_mqtt_host="gateway.example.org")
    assert "plain text" in str(plain.lorawan_cleartext_warning())
    assert LorawanBrokerSettings(lorawan_mqtt_host="127.0.0.1").lorawan_cleartext_warning() is None
    with pytest.raises(ValueError, match="not both"):
        LorawanBrokerSettings(lorawan_mqtt_password="a", lorawan_mqtt_password_file=key)  # type: ignore[arg-type]
