"""One device's bad value spoils nothing else: a Modbus float32 NaN or infinity (a common
sensor-fault value) is quarantined at the one calibration entry point, counted, and the healthy
device on the same bus is still polled."""

from __future__ import annotations

import itertools
import logging
import struct
from pathlib import Path

import pytest
from support.harness import edge_committer

from edge.drivers.poller import OutboxSink, build_pollers
from edge.outbox import Outbox
from farmwatch_emulators.modbus_bus import ModbusRtuBus
from farmwatch_shared.farm.model import FarmConfig
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


def float32_low_word_first(pattern: int) -> dict[int, int]:
    """Registers 0x10–0x11 of the level transmitter (pressure_kpa, float32, low word first)."""
    return {0x10: pattern & 0xFFFF, 0x11: pattern >> 16}


NAN, INF = 0x7FC00000, 0x7F800000
(TWELVE,) = struct.unpack(">I", struct.pack(">f", 12.0))


def farm(port: str) -> FarmConfig:
    faulty = {"bus": "rs485-1", "address": 1, "point": "pressure_kpa"}
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
                    "timeout_s": 0.3,
                    "devices": [
                        {"address": 1, "options": {"register_map": "level-rs485-hydrostatic"}},
                        {"address": 2, "options": {"register_map": "soil-th-rs485"}},
                    ],
                }
            ],
            # three sensors fed by the faulty value, each through a path that crashed on NaN
            "sensors": [
                {
                    "id": "pond",  # strapping table: IndexError
                    "agent": "pi-1",
                    "channel": "M1",
                    "kind": "water_level",
                    "transducer": {"type": "pressure"},
                    "vessel": {"shape": "strapping_table", "points": [[0, 0], [2000, 9000]]},
                    "source": faulty,
                },
                {
                    "id": "rain",  # round(nan): ValueError, round(inf): OverflowError
                    "agent": "pi-1",
                    "channel": "M2",
                    "kind": "rain",
                    "source": faulty,
                },
                {
                    "id": "soil-table",  # soil calibration table: IndexError
                    "agent": "pi-1",
                    "channel": "M3",
                    "kind": "soil_moisture",
                    "coefficients": [0.0, 1.0],
                    "source": faulty,
                },
                {
                    "id": "soil-probe",  # the healthy device
                    "agent": "pi-1",
                    "channel": "M4",
                    "kind": "soil_moisture",
                    "coefficients": [0.0, 1.0],
                    "source": {"bus": "rs485-1", "address": 2, "point": "moisture"},
                },
            ],
            "calibrations": [
                {
                    "sensor": "soil-table",
                    "effective_from": "2024-01-01T00:00:00Z",
                    "curve": {"type": "table", "points": [[0, 0], [100, 50]]},
                }
            ],
        }
    )


def test_a_nan_or_infinite_modbus_value_is_quarantined_and_the_healthy_device_still_polled(
    tmp_path: Path,
) -> None:
    patterns = itertools.chain([NAN, INF], itertools.repeat(TWELVE))
    current = {"pattern": NAN}

    def level_transmitter() -> dict[int, dict[int, int]]:
        return {3: float32_low_word_first(current["pattern"])}

    bus = ModbusRtuBus(
        {1: {3: {0x10: 0, 0x11: 0}}, 2: {3: {0: 312, 1: 215, 2: 1450}}},
        live={1: level_transmitter},
    ).start()
    problems = ProblemLog(logging.getLogger("test.bus-isolation"))
    clock = StepClock()
    outbox = Outbox(tmp_path / "outbox.db", 1000)
    config = farm(bus.agent_path)
    sink = OutboxSink(config.sensors, edge_committer(outbox, clock, problems, config))
    (poller,) = build_pollers(config, "pi-1", sink, clock, problems)
    try:
        for _ in range(2):  # NaN, then +infinity
            current["pattern"] = next(patterns)
            poller.poll_due()
            clock.advance(60)
        committed = outbox.after(-1, 10)
        assert [r.sensor for r in committed] == ["soil-probe", "soil-probe"]
        assert [r.value for r in committed] == [pytest.approx(31.2)] * 2
        assert problems.count("raw_not_finite") == 6
        causes = [cause for cause, _ in outbox.quarantined()]
        assert causes == ["raw_not_finite"] * 6
        # a non-finite sample is no rain counter: it never becomes the gauge's baseline
        assert outbox.sensor_state("rain").counter is None

        current["pattern"] = next(patterns)  # the transmitter recovers: 12.0 kPa
        poller.poll_due()
        after = {r.sensor: r for r in outbox.after(committed[-1].seq, 10)}
        assert set(after) == {"pond", "rain", "soil-table", "soil-probe"}
        assert after["rain"].value == 0.0  # the first believable counter: the baseline
        assert after["soil-table"].value == pytest.approx(6.0)
        assert poller.failures == {}
    finally:
        poller.close()
        outbox.close()
        bus.stop()
