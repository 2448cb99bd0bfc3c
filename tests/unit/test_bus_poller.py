"""A bus poller isolates each device: a driver that cannot handle one device's answer fails
that device's poll, counted, and the other devices on the bus are still polled."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from edge.drivers.base import RawSample
from edge.drivers.poller import BusPoller
from farmwatch_shared.farm.model import BusDevice, FarmConfig
from farmwatch_shared.problems import ProblemLog


class StepClock:
    def __init__(self) -> None:
        self.mono = 1000.0

    def now_ms(self) -> int:
        return 1_795_000_000_000 + int(self.mono * 1000)

    def monotonic(self) -> float:
        return self.mono

    def sleep(self, seconds: float) -> None:
        self.mono += seconds


class BrokenForUnitOne:
    """A driver with a bug that an odd answer of unit 1 triggers."""

    def read(self, device: BusDevice, points: Sequence[str]) -> Mapping[str, float]:
        if device.address == 1:
            raise KeyError("register 0x0010")
        return {p: 20.0 for p in points}

    def close(self) -> None:
        pass


CONFIG = FarmConfig.model_validate(
    {
        "farm": {"id": "oax-test", "name": "Prueba"},
        "agents": [{"id": "pi-1"}],
        "buses": [
            {
                "id": "rs485-1",
                "agent": "pi-1",
                "driver": "modbus_rtu",
                "port": "/dev/null",
                "devices": [
                    {"address": 1, "options": {"register_map": "soil-th-rs485"}},
                    {"address": 2, "options": {"register_map": "soil-th-rs485"}},
                ],
            }
        ],
        "sensors": [
            {
                "id": f"soil-{unit}",
                "agent": "pi-1",
                "channel": f"M{unit}",
                "kind": "soil_moisture",
                "coefficients": [0.0, 1.0],
                "source": {"bus": "rs485-1", "address": unit, "point": "moisture"},
            }
            for unit in (1, 2)
        ],
    }
)


def test_a_driver_error_of_any_kind_fails_one_device_and_the_bus_goes_on() -> None:
    problems = ProblemLog(logging.getLogger("test.poller"))
    clock = StepClock()
    samples: list[RawSample] = []
    poller = BusPoller(
        CONFIG.buses[0], BrokenForUnitOne(), CONFIG.sensors, samples.append, clock, problems
    )
    for _ in range(3):
        poller.poll_due()
        clock.sleep(60)
    assert [s.sensor for s in samples] == ["soil-2"] * 3
    assert poller.failures == {"1": 3}
    assert problems.count("driver_error") == 3
