"""Modbus RTU: pymodbus's own RTU server on a pty bus, the shipped register maps, faults."""

from __future__ import annotations

import logging
import math
import struct
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from support.harness import edge_committer

from edge.drivers.base import DriverError, RawSample
from edge.drivers.crc import crc16_a001, modbus_frame_ok
from edge.drivers.modbus_rtu import (
    DRIVER,
    ModbusRtuDriver,
    decode_field,
    plan_requests,
    pymodbus_client_factory,
)
from edge.drivers.poller import BusPoller, OutboxSink, build_pollers, check_buses
from edge.drivers.registry import UnknownDriverError, available_drivers, driver_spec
from edge.outbox import Outbox
from farmwatch_emulators.modbus_bus import ModbusRtuBus
from farmwatch_shared.contract import ReadingFlag
from farmwatch_shared.farm.model import BusDevice, FarmConfig
from farmwatch_shared.farm.register_maps import DeviceInfo, RegisterField, RegisterMap
from farmwatch_shared.problems import ProblemLog

T0 = 1_795_000_000_000


class StepClock:
    """Wall and monotonic time both set by the test."""

    def __init__(self) -> None:
        self.now = T0
        self.mono = 1000.0

    def now_ms(self) -> int:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1000)
        self.mono += seconds

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)


def words(fmt: str, value: float) -> list[int]:
    """Big-endian 16-bit words of a value packed with struct (independent of the driver)."""
    data = struct.pack(fmt, value)
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


PRESSURE_HI, PRESSURE_LO = words(">f", 12.1)
COUNT_HI, COUNT_LO = words(">i", -70000)
DEVICES = {
    # soil probe, shipped map soil-th-rs485: 31.2 %, −10.0 °C, 1450 µS/cm
    1: {3: {0: 312, 1: 0x10000 - 100, 2: 1450}},
    # level transmitter, shipped map level-rs485-hydrostatic: 1234 mm; 12.1 kPa as float32 with
    # the low word first; −70000 as int32 high word first in input registers
    2: {
        3: {4: 1234, 0x10: PRESSURE_LO, 0x11: PRESSURE_HI},
        4: {0x20: COUNT_HI, 0x21: COUNT_LO},
    },
}


def farm(port: str, retries: int = 2) -> FarmConfig:
    return FarmConfig.model_validate(
        {
            "farm": {"id": "oax-test", "name": "Prueba"},
            "agents": [{"id": "pi-1"}],
            "buses": [
                {
                    "id": "rs485-1",
                    "agent": "pi-1",
                    "driver": "modbus_rtu",
                    "port": port,
                    "baudrate": 9600,
                    "timeout_s": 0.3,
                    "retries": retries,
                    "devices": [
                        {"address": 1, "options": {"register_map": "soil-th-rs485"}},
                        {"address": 2, "options": {"register_map": "level-rs485-hydrostatic"}},
                    ],
                }
            ],
            "sensors": [
                {
                    "id": "soil-probe",
                    "agent": "pi-1",
                    "channel": "M1",
                    "kind": "soil_moisture",
                    "coefficients": [0.0, 1.0],
                    "source": {"bus": "rs485-1", "address": 1, "point": "moisture"},
                },
                {
                    "id": "tank",
                    "agent": "pi-1",
                    "channel": "M2",
                    "kind": "water_level",
                    "transducer": {"type": "pressure"},
                    "vessel": {
                        "shape": "vertical_cylinder",
                        "diameter_mm": 2000,
                        "height_mm": 2000,
                    },
                    "source": {"bus": "rs485-1", "address": 2, "point": "pressure_kpa"},
                },
            ],
        }
    )


@pytest.fixture
def bus() -> Iterator[ModbusRtuBus]:
    server = ModbusRtuBus(DEVICES).start()
    yield server
    server.stop()


@pytest.fixture
def problems() -> ProblemLog:
    return ProblemLog(logging.getLogger("test.modbus"))


def test_crc_and_decoding_are_right_for_hand_computed_frames_and_words() -> None:
    # read holding registers 0..1 of unit 1, as seen on the wire: CRC C4 0B (low byte first)
    assert crc16_a001(bytes.fromhex("010300000002"), 0xFFFF) == 0x0BC4
    assert modbus_frame_ok(bytes.fromhex("010300000002c40b"))
    assert not modbus_frame_ok(bytes.fromhex("010300000002c40c"))
    f32 = RegisterField(address=0, type="float32")
    assert decode_field(f32, [0x3F80, 0x0000]) == 1.0
    assert decode_field(f32.model_copy(update={"word_order": "little"}), [0x0000, 0x3F80]) == 1.0
    assert decode_field(RegisterField(address=0, type="int16", scale=0.1), [0xFFFF]) == -0.1
    assert decode_field(RegisterField(address=0, type="uint16"), [0xFFFF]) == 65535.0
    assert decode_field(RegisterField(address=0, type="int32"), [0xFFFE, 0xEEEE]) == -69906.0
    with pytest.raises(ValueError, match="float32 needs 2 registers, got 1"):
        decode_field(f32, [1])
    fields = [
        RegisterField(address=0, type="uint16"),
        RegisterField(address=1, type="int16"),
        RegisterField(address=200, type="int32"),
        RegisterField(address=7, function=4, type="float32"),
    ]
    assert plan_requests(fields) == [(3, 0, 2), (3, 200, 2), (4, 7, 2)]


def test_drivers_are_found_by_name_and_unknown_names_refused() -> None:
    assert {"modbus_rtu", "sdi12"} <= set(available_drivers())
    assert driver_spec("modbus_rtu") is DRIVER
    for bad in ("nonexistent", "poller", "base", "../x"):
        with pytest.raises(UnknownDriverError):
            driver_spec(bad)


def test_pymodbus_server_values_decode_through_the_shipped_maps(
    bus: ModbusRtuBus, problems: ProblemLog
) -> None:
    config = farm(bus.agent_path)
    (bus_config,) = config.buses
    driver = DRIVER.build(bus_config, problems, StepClock())
    try:
        soil, level = bus_config.devices
        got = driver.read(soil, ["moisture", "temperature", "conductivity"])
        assert got == {
            "moisture": pytest.approx(31.2),
            "temperature": pytest.approx(-10.0),
            "conductivity": 1450.0,
        }
        got = driver.read(level, ["level_mm", "level_kpa", "pressure_kpa", "samples_total"])
        assert got["level_mm"] == 1234.0
        assert got["level_kpa"] == pytest.approx(1234 * 0.00980665)
        assert got["pressure_kpa"] == pytest.approx(12.1, rel=1e-6)
        assert got["samples_total"] == -70000.0
    finally:
        driver.close()
    assert problems.total() == 0


def test_poller_commits_calibrated_readings_and_survives_crc_errors_and_a_silent_device(
    bus: ModbusRtuBus, problems: ProblemLog, tmp_path: Path
) -> None:
    config = farm(bus.agent_path, retries=2)
    clock = StepClock()
    outbox = Outbox(tmp_path / "outbox.db", 1000)
    sink = OutboxSink(config.sensors, edge_committer(outbox, clock, problems))
    (poller,) = build_pollers(config, "pi-1", sink, clock, problems)
    try:
        poller.poll_due()
        soil, tank = outbox.after(-1, 10)
        assert (soil.sensor, soil.ts) == ("soil-probe", T0)
        assert soil.raw == pytest.approx(31.2)
        assert soil.value == pytest.approx(31.2)
        assert tank.sensor == "tank"
        assert tank.raw == pytest.approx(12.1, rel=1e-6)
        # 12.1 kPa of water: 12.1e3 / (1000 × 9.80665) m = 1233.85 mm of a 2000 mm tank
        assert tank.value == pytest.approx(61.69, abs=0.01)
        assert tank.volume_l == pytest.approx(math.pi * 1.0**2 * 1.23385 * 1000, abs=0.5)

        # one corrupted response: a CRC error, counted, retried, both devices still read
        bus.corrupt_responses(1)
        clock.advance(60)
        poller.poll_due()
        assert bus.responses_corrupted == 1
        assert problems.count("modbus_crc") == 1
        assert problems.count("device_failed") == 0
        assert outbox.backlog() == 4

        # the level transmitter goes silent: each try times out, the device is reported once
        # per poll, the soil probe on the same bus is still read
        bus.silence(2)
        clock.advance(60)
        poller.poll_due()
        assert problems.count("modbus_timeout") == 3  # first try + 2 retries
        assert problems.count("device_failed") == 1
        assert poller.failures == {"2": 1}
        assert [r.sensor for r in outbox.after(3, 10)] == ["soil-probe"]

        # every try corrupted: reported as a failed device with the CRC cause, no crash
        bus.silence(2, silent=False)
        bus.corrupt_responses(3)
        clock.advance(60)
        poller.poll_due()
        assert problems.count("device_failed") == 2
        assert problems.count("modbus_crc") == 4
        clock.advance(60)
        poller.poll_due()
        assert [r.sensor for r in outbox.after(4, 10)][-2:] == ["soil-probe", "tank"]
    finally:
        outbox.close()


def test_a_device_failing_every_try_raises_driver_error_with_cause(
    bus: ModbusRtuBus, problems: ProblemLog
) -> None:
    (bus_config,) = farm(bus.agent_path, retries=1).buses
    driver = DRIVER.build(bus_config, problems, StepClock())
    bus.silence(1)
    try:
        with pytest.raises(DriverError) as caught:
            driver.read(bus_config.devices[0], ["moisture"])
    finally:
        driver.close()
    assert caught.value.cause == "modbus_timeout"
    assert problems.count("modbus_timeout") == 2


def test_farm_file_naming_an_unknown_map_field_is_refused_before_opening(
    problems: ProblemLog,
) -> None:
    data = farm("/dev/null").model_dump(mode="json")
    data["sensors"][0]["source"]["point"] = "salinity"
    config = FarmConfig.model_validate(data)
    with pytest.raises(ValueError, match="salinity"):
        build_pollers(config, "pi-1", lambda sample: None, StepClock(), problems)


def test_the_farm_file_example_in_the_docs_is_valid_and_builds_pollers(
    problems: ProblemLog,
) -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "drivers.md").read_text(encoding="utf-8")
    example = text.split("## Farm file", 1)[1].split("```toml", 1)[1].split("```", 1)[0]
    header = '[farm]\nid = "doc-farm"\nname = "Docs"\n[[agents]]\nid = "pi-1"\n'
    config = FarmConfig.model_validate(tomllib.loads(header + example))
    pollers = build_pollers(config, "pi-1", lambda sample: None, StepClock(), problems)
    assert [p.bus.driver for p in pollers] == ["modbus_rtu", "sdi12"]
    for poller in pollers:
        poller.close()


def test_an_exception_response_is_reported_at_once_not_retried(
    bus: ModbusRtuBus, problems: ProblemLog
) -> None:
    (bus_config,) = farm(bus.agent_path, retries=2).buses
    odd_map = RegisterMap(
        device=DeviceInfo(name="wrong map"),
        fields={"nothing": RegisterField(address=0x50, type="uint16")},
    )
    driver = ModbusRtuDriver(
        bus_config, pymodbus_client_factory(bus_config), {"odd": odd_map}, problems, StepClock()
    )
    device = bus_config.devices[0].model_copy(update={"options": {"register_map": "odd"}})
    try:
        with pytest.raises(DriverError) as caught:
            driver.read(device, ["nothing"])
    finally:
        driver.close()
    assert caught.value.cause == "modbus_exception"
    assert "code 2" in caught.value.detail  # illegal data address
    assert driver.requests == 1
    assert problems.count("modbus_exception") == 1


class RecordingDriver:
    """A driver double answering from a table, recording what was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, float]] = []
        self.clock: StepClock | None = None

    def read(self, device: BusDevice, points: Sequence[str]) -> Mapping[str, float]:
        assert self.clock is not None
        self.asked.append((str(device.address), self.clock.mono))
        return {p: 10.0 for p in points}

    def close(self) -> None:
        pass


def test_each_device_is_polled_at_its_own_interval(problems: ProblemLog) -> None:
    data = farm("/dev/null").model_dump(mode="json")
    data["buses"][0]["devices"][0]["interval_s"] = 60
    data["buses"][0]["devices"][1]["interval_s"] = 150
    config = FarmConfig.model_validate(data)
    clock = StepClock()
    driver = RecordingDriver()
    driver.clock = clock
    samples: list[RawSample] = []
    poller = BusPoller(config.buses[0], driver, config.sensors, samples.append, clock, problems)
    start = clock.mono
    for _ in range(31):  # 300 s in 10 s steps
        wait = poller.poll_due()
        assert 0 <= wait <= 150
        clock.advance(10)
    unit1 = [t - start for a, t in driver.asked if a == "1"]
    unit2 = [t - start for a, t in driver.asked if a == "2"]
    assert unit1 == [0, 60, 120, 180, 240, 300]
    assert unit2 == [0, 150, 300]
    assert {s.sensor for s in samples} == {"soil-probe", "tank"}
    assert len(samples) == 9


def test_bus_readings_taken_with_an_untrusted_clock_are_flagged_and_re_timed(
    problems: ProblemLog, tmp_path: Path
) -> None:
    config = farm("/dev/null")
    clock = StepClock()
    outbox = Outbox(tmp_path / "outbox.db", 100)
    trusted = [False]
    committer = edge_committer(outbox, clock, problems, None, lambda: trusted[0], "boot-a")
    sink = OutboxSink(config.sensors, committer)
    driver = RecordingDriver()
    driver.clock = clock
    poller = BusPoller(config.buses[0], driver, config.sensors, sink, clock, problems)
    poller.poll_due()  # at monotonic 1000 s, wall clock T0 (wrong: not yet synchronised)
    assert outbox.after(-1, 10) == []  # held back from the uplink: the time is unknown
    assert outbox.held() == 2
    clock.advance(30)
    trusted[0] = True
    # the clock synchronises 30 s later and turns out to be 1 h behind
    assert outbox.correct_clock(T0 + 3_600_000 + 30_000, int(clock.mono * 1000), "boot-a") == (
        2,
        0,
    )
    fixed = outbox.after(-1, 10)
    assert {(r.ts, r.flags) for r in fixed} == {(T0 + 3_600_000, int(ReadingFlag.CLOCK_CORRECTED))}
    outbox.close()


def test_check_buses_refuses_an_unknown_driver_without_opening_anything() -> None:
    data = farm("/dev/ttyUSB-that-does-not-exist").model_dump(mode="json")
    assert [bus.id for bus, _ in check_buses(FarmConfig.model_validate(data), "pi-1")] == [
        "rs485-1"
    ]
    data["buses"][0]["driver"] = "canbus"
    with pytest.raises(UnknownDriverError, match="canbus"):
        check_buses(FarmConfig.model_validate(data), "pi-1")
