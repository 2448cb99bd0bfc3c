"""The LoRaWAN source, one MQTT message at a time, into a real outbox through the agent's
committer (no broker: ``handle`` is what the worker calls for each delivery before it
acknowledges it)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.clocks import FrozenClock
from support.harness import edge_committer
from support.lorawan import NoBroker

from edge.lorawan.source import LorawanReader, build_reader, check_devices, topic_filters
from edge.outbox import Outbox, StateUpdate
from farmwatch_emulators.lorawan import (
    NetworkServerEmulator,
    Published,
    chirpstack_uplink,
    ldds75_payload,
    lse01_payload,
)
from farmwatch_shared.calibration.calibrate import SensorState
from farmwatch_shared.contract import Reading, ReadingFlag
from farmwatch_shared.farm.model import FarmConfig
from farmwatch_shared.mqtt import Delivery
from farmwatch_shared.problems import ProblemLog

APP = "6b0ab6c4-3a5f-4e0c-9d61-2f3b7c1d9e10"
TROUGH_EUI, SOIL_EUI, PAIR_EUI = "a84041000181c0d1", "a840410000181c2e", "a84041000181c0ff"
NOW = 1_795_000_000_000
MIN = 60_000
FARM = f"""
[farm]
id = "chis-frailesca"
name = "LoRaWAN"

[[agents]]
id = "pi-1"

[[lorawan_devices]]
id = "trough-node"
agent = "pi-1"
network = "chirpstack"
application = "{APP}"
dev_eui = "{TROUGH_EUI.upper()}"
codec = "dragino_ldds75"

[[lorawan_devices]]
id = "soil-node"
agent = "pi-1"
network = "chirpstack"
application = "{APP}"
dev_eui = "{SOIL_EUI}"
codec = "dragino_lse01"

[[lorawan_devices]]
id = "pair-node"
agent = "pi-1"
network = "chirpstack"
application = "{APP}"
dev_eui = "{PAIR_EUI}"
codec = "object"
object_fields = {{ distance_mm = "distance", moisture_pct = "soil.vwc" }}

[[sensors]]
id = "trough"
agent = "pi-1"
channel = "L1"
kind = "water_level"
transducer = {{ type = "ultrasonic", mount_height_mm = 900 }}
vessel = {{ shape = "rectangular", length_mm = 2500, width_mm = 700, height_mm = 550 }}
source = {{ lorawan = "trough-node", point = "distance_mm" }}

[[sensors]]
id = "soil"
agent = "pi-1"
channel = "L2"
kind = "soil_moisture"
coefficients = [0.0, 1.0]
source = {{ lorawan = "soil-node", point = "moisture_pct" }}

[[sensors]]
id = "pair-level"
agent = "pi-1"
channel = "L3"
kind = "water_level"
transducer = {{ type = "ultrasonic", mount_height_mm = 900 }}
vessel = {{ shape = "rectangular", length_mm = 2500, width_mm = 700, height_mm = 550 }}
source = {{ lorawan = "pair-node", point = "distance_mm" }}

[[sensors]]
id = "pair-soil"
agent = "pi-1"
channel = "L4"
kind = "soil_moisture"
coefficients = [0.0, 1.0]
source = {{ lorawan = "pair-node", point = "moisture_pct" }}
"""


class Rig:
    """A reader over a real outbox; ``server`` makes the events its deliveries carry."""

    def __init__(self, tmp_path: Path, farm: FarmConfig, trusted: bool = True) -> None:
        self.farm = farm
        self.clock = FrozenClock(NOW)
        self.problems = ProblemLog(logging.getLogger("test.lorawan"))
        self.outbox = Outbox(tmp_path / "outbox.sqlite3", 1000)
        self.trusted = trusted
        self.committer = edge_committer(
            self.outbox, self.clock, self.problems, farm, clock_trusted=lambda: self.trusted
        )
        self.reader = self.new_reader()
        self.sent: list[Published] = []
        self.server = NetworkServerEmulator("chirpstack", APP, self._keep)
        self.server.add("trough-node", TROUGH_EUI)
        self.server.add("soil-node", SOIL_EUI)
        self.server.add("pair-node", PAIR_EUI)
        self.mid = 0

    def new_reader(self) -> LorawanReader:
        """A reader as after a restart of the agent (its state read from the outbox)."""
        return LorawanReader(
            devices=self.farm.lorawan_devices,
            sensors=self.farm.sensors,
            consumer=NoBroker(),
            committer=self.committer,
            outbox=self.outbox,
            clock=self.clock,
            problems=self.problems,
            clock_trusted=lambda: self.trusted,
        )

    def _keep(self, topic: str, payload: bytes, qos: int) -> None:
        self.sent.append(Published(topic, payload, qos))
        self.deliver(topic, payload)

    def deliver(self, topic: str, payload: bytes, qos: int = 1) -> None:
        self.mid += 1
        self.reader.handle(Delivery(self.mid, qos, topic, payload))

    def readings(self, sensor: str | None = None) -> list[Reading]:
        return [r for r in self.outbox.after(-1, 1000) if sensor is None or r.sensor == sensor]

    def causes(self) -> list[str]:
        return [cause for cause, _ in self.outbox.quarantined()]

    def health(self, device: str) -> dict[str, object]:
        (found,) = [h for h in self.reader.health() if h.id == device]
        return {f: getattr(found, f) for f in found.__struct_fields__}


@pytest.fixture
def farm(tmp_path: Path) -> FarmConfig:
    from farmwatch_shared.farm.model import load_farm_config

    path = tmp_path / "farm.toml"
    path.write_text(FARM)
    return load_farm_config(path)


@pytest.fixture
def rig(tmp_path: Path, farm: FarmConfig) -> Iterator[Rig]:
    made = Rig(tmp_path, farm)
    yield made
    made.outbox.close()


def test_an_uplink_becomes_a_calibrated_reading_at_its_network_time(
    tmp_path: Path, farm: FarmConfig
) -> None:
    rig = Rig(tmp_path, farm, trusted=False)  # the agent's clock is not trusted: no matter
    uplink_ms = NOW - 7 * MIN
    rig.server.uplink("trough-node", 2, ldds75_payload(625, battery_mv=3050), uplink_ms)
    (reading,) = rig.readings()
    # 900 mm mount height - 625 mm = 275 mm of 550: 50 %; 25 × 7 × 2.75 dm³ = 481.25 L
    assert (reading.sensor, reading.value, reading.raw) == ("trough", 50.0, 625.0)
    assert reading.volume_l == 481.25
    assert reading.ts == uplink_ms
    assert reading.flags == 0  # the network's time: never held for the agent's clock
    assert ReadingFlag.CLOCK_UNSYNCED not in ReadingFlag(reading.flags)
    health = rig.health("trough-node")
    assert health["battery_v"] == 3.05
    assert (health["fcnt"], health["last_uplink_ts"], health["rssi_dbm"]) == (0, uplink_ms, -97.0)
    rig.outbox.close()


def test_duplicates_are_stored_once_and_counted(rig: Rig) -> None:
    first = rig.server.uplink("soil-node", 2, lse01_payload(21.37), NOW - MIN)
    rig.server.again(first)  # the network server's retry, byte for byte
    rig.deliver(first.topic, first.payload)  # a redelivery after a reconnect
    # the same uplink in a new event (another dedup id): same device, counter and time
    device = rig.server.devices["soil-node"]
    device.fcnt -= 1
    rig.server.uplink("soil-node", 2, lse01_payload(21.37), NOW - MIN, dedup_id="other")
    assert [r.value for r in rig.readings("soil")] == [21.37]
    assert rig.health("soil-node")["duplicates"] == 3
    assert rig.causes() == []
    # and after a restart of the agent, still once
    rig.reader = rig.new_reader()
    rig.deliver(first.topic, first.payload)
    assert len(rig.readings("soil")) == 1


def test_gaps_in_the_frame_counter_are_lost_uplinks_kept_across_restarts(rig: Rig) -> None:
    rig.server.uplink("soil-node", 2, lse01_payload(20.0), NOW - 60 * MIN)
    rig.server.lose("soil-node", 3)
    rig.server.uplink("soil-node", 2, lse01_payload(19.5), NOW - 40 * MIN)
    assert rig.health("soil-node")["lost_uplinks"] == 3
    rig.reader = rig.new_reader()
    assert rig.health("soil-node")["lost_uplinks"] == 3


def test_a_rejoin_with_a_counter_reset_is_not_taken_for_a_duplicate(rig: Rig) -> None:
    for minute in (0, 20, 40):
        rig.server.uplink("soil-node", 2, lse01_payload(20.0 + minute / 10), NOW + minute * MIN)
    rig.server.rejoin("soil-node", NOW + 50 * MIN)
    rig.server.uplink("soil-node", 2, lse01_payload(25.0), NOW + 60 * MIN)  # fCnt 0 again
    rig.server.uplink("soil-node", 2, lse01_payload(25.5), NOW + 80 * MIN)  # fCnt 1
    assert [r.value for r in rig.readings("soil")] == [20.0, 22.0, 24.0, 25.0, 25.5]
    health = rig.health("soil-node")
    assert (health["rejoins"], health["lost_uplinks"], health["duplicates"]) == (1, 0, 0)
    # a device that restarts its counter without a join event we saw: its later time tells
    rig.server.devices["soil-node"].fcnt = 0
    rig.server.uplink("soil-node", 2, lse01_payload(26.0), NOW + 100 * MIN)
    assert [r.value for r in rig.readings("soil")][-1] == 26.0
    assert rig.health("soil-node")["rejoins"] == 2


def test_an_uplink_half_committed_before_a_crash_is_finished_not_doubled(rig: Rig) -> None:
    published = chirpstack_uplink(
        application=APP,
        dev_eui=PAIR_EUI,
        fcnt=9,
        fport=2,
        data=b"",
        time_ms=NOW,
        dedup_id="d-9",
    )
    payload = published.replace(
        b'"data": ""', b'"data": "", "object": {"distance": 350, "soil": {"vwc": 31.5}}'
    )
    topic = f"application/{APP}/device/{PAIR_EUI}/event/up"
    rig.deliver(topic, payload)
    levels, soils = rig.readings("pair-level"), rig.readings("pair-soil")
    assert (len(levels), len(soils)) == (1, 1)
    # what the outbox holds after a crash between the two parts' transactions: the second
    # part's reading, its sensor's state and its mark undone
    second = soils[0]
    rig.outbox.commit([(second.seq, second.seq)])
    mark = {k: v for k, v in rig.outbox.source_state("lorawan/pair-node").items()}
    rig.outbox.set_state(
        StateUpdate({"pair-soil": SensorState()}, source={"lorawan/pair-node.parts": 1.0})
    )
    assert mark["parts"] == 2
    rig.reader = rig.new_reader()
    rig.deliver(topic, payload)  # the broker delivers the unacknowledged message again
    assert len(rig.readings("pair-level")) == 1
    (again,) = rig.readings("pair-soil")
    assert (again.value, again.ts) == (31.5, NOW)
    rig.deliver(topic, payload)
    assert len(rig.readings()) == 2


def test_a_no_target_reading_is_refused_and_counted_never_a_level(rig: Rig) -> None:
    rig.server.uplink("trough-node", 2, ldds75_payload(20), NOW)  # 0x0014: invalid
    rig.server.uplink("trough-node", 2, ldds75_payload(0, sensor_flag=0), NOW + 20 * MIN)
    assert rig.readings() == []
    assert rig.causes() == ["lorawan_no_target", "lorawan_no_sensor"]
    assert rig.problems.count("lorawan_no_target") == 1
    assert rig.health("trough-node")["refused"] == 2
    # a sensor fault is still an uplink of the sequence: a retry of it is a duplicate
    rig.server.again(rig.sent[0])
    assert rig.causes() == ["lorawan_no_target", "lorawan_no_sensor"]


def test_garbage_is_counted_and_quarantined_with_its_reason(rig: Rig) -> None:
    trough = f"application/{APP}/device/{TROUGH_EUI}/event/up"

    def event(fcnt: int, fport: int, data: bytes) -> bytes:
        return chirpstack_uplink(
            application=APP, dev_eui=TROUGH_EUI, fcnt=fcnt, fport=fport, data=data, time_ms=NOW
        )

    good = ldds75_payload(625)
    rig.deliver(trough, event(1, 3, good))  # wrong fPort
    rig.deliver(trough, event(2, 2, good[:5]))  # short
    rig.deliver(trough, event(3, 2, good + b"\x00"))  # overlong
    unknown = "0000000000000bad"
    rig.deliver(
        f"application/{APP}/device/{unknown}/event/up",
        chirpstack_uplink(
            application=APP, dev_eui=unknown, fcnt=1, fport=2, data=good, time_ms=NOW
        ),
    )
    rig.deliver(trough, b'{"deviceInfo": {')  # bad JSON
    rig.deliver(trough, event(4, 2, good).replace(b'"data": "', b'"data": "*'))  # bad base64
    rig.deliver(trough, b"\x00\xff" * 10)
    assert rig.readings() == []
    assert rig.causes() == [
        "lorawan_wrong_fport",
        "lorawan_payload_length",
        "lorawan_payload_length",
        "lorawan_unknown_device",
        "lorawan_bad_json",
        "lorawan_bad_base64",
        "lorawan_bad_json",
    ]
    details = dict(zip(rig.causes(), (d for _, d in rig.outbox.quarantined()), strict=False))
    assert "fPort 3" in details["lorawan_wrong_fport"]
    assert unknown in details["lorawan_unknown_device"]
    assert rig.problems.count("lorawan_payload_length") == 2
    assert rig.health("trough-node")["refused"] == 3
    # the stream goes on
    rig.deliver(trough, event(5, 2, good))
    assert [r.value for r in rig.readings()] == [50.0]


def test_an_implausible_network_time_falls_back_to_the_agent_clock(rig: Rig) -> None:
    rig.server.uplink("soil-node", 2, lse01_payload(30.0), 86_400_000)  # a gateway in 1970
    rig.server.uplink("soil-node", 2, lse01_payload(31.0), NOW + 3 * 86_400_000)  # days ahead
    assert [r.ts for r in rig.readings()] == [NOW, NOW + 1]  # the agent's (trusted) clock
    assert rig.problems.count("lorawan_time_implausible") == 2


def test_while_the_agent_clock_is_untrusted_the_network_time_is_the_better_one(
    tmp_path: Path, farm: FarmConfig
) -> None:
    rig = Rig(tmp_path, farm, trusted=False)
    rig.clock.now = 86_400_000  # a Pi without a real-time clock, booted in 1970
    rig.server.uplink("soil-node", 2, lse01_payload(30.0), NOW)
    (reading,) = rig.readings()
    assert (reading.ts, reading.flags) == (NOW, 0)  # not held for the agent's clock
    assert rig.problems.count("lorawan_time_implausible") == 0
    rig.outbox.close()


def test_device_status_events_and_qos0_deliveries(rig: Rig) -> None:
    rig.server.status("soil-node", NOW, battery_pct=87.5, margin_db=9)
    health = rig.health("soil-node")
    assert (health["battery_pct"], health["margin_db"]) == (87.5, 9)
    uplink = chirpstack_uplink(
        application=APP, dev_eui=SOIL_EUI, fcnt=1, fport=2, data=lse01_payload(12.0), time_ms=NOW
    )
    rig.deliver(f"application/{APP}/device/{SOIL_EUI}/event/up", uplink, qos=0)
    assert [r.value for r in rig.readings()] == [12.0]


def test_topics_codec_checks_and_the_build(farm: FarmConfig, tmp_path: Path) -> None:
    assert topic_filters(farm.lorawan_devices) == [
        f"application/{APP}/device/+/event/up",
        f"application/{APP}/device/+/event/join",
        f"application/{APP}/device/+/event/status",
    ]
    bad = farm.model_copy(
        update={
            "sensors": tuple(
                s.model_copy(update={"source": s.source.model_copy(update={"point": "level"})})
                if s.id == "soil" and s.source is not None
                else s
                for s in farm.sensors
            )
        }
    )
    with pytest.raises(ValueError, match="has no point 'level'"):
        check_devices(bad.lorawan_devices, bad.sensors)
    outbox = Outbox(tmp_path / "o.sqlite3", 10)
    clock = FrozenClock(NOW)
    problems = ProblemLog(logging.getLogger("test.lorawan"))
    committer = edge_committer(outbox, clock, problems, farm)
    common = {
        "farm": farm,
        "agent_id": "pi-1",
        "session_expiry_s": 60,
        "receive_maximum": 5,
        "committer": committer,
        "outbox": outbox,
        "clock": clock,
        "problems": problems,
        "clock_trusted": lambda: True,
    }
    assert build_reader(endpoint=None, **common) is None  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="has no point"):
        build_reader(endpoint=None, **{**common, "farm": bad})  # type: ignore[arg-type]
    outbox.close()
