"""Emulates every field bus of one agent (Modbus RTU, SDI-12) from a scenario, for the demo.

Each sensor on a bus reports what the scenario says it sees, encoded as its device would:
Modbus registers per the sensor's register map, SDI-12 values per measurement.
"""

from __future__ import annotations

import struct
import threading
from collections import defaultdict
from collections.abc import Callable

from farmwatch_emulators.modbus_bus import ModbusRtuBus, Registers
from farmwatch_emulators.scenario import DroughtScenario, raw_for
from farmwatch_emulators.sdi12 import Sdi12Bus, Sdi12Sensor
from farmwatch_shared.farm.model import BusConfig, BusSource, FarmConfig, SensorConfig
from farmwatch_shared.farm.register_maps import RegisterField, find_register_map

_FORMATS = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "float32": ">f"}


def encode_field(field: RegisterField, value: float) -> dict[int, int]:
    """The registers a device holds for ``value`` of ``field`` (scale, type, word order)."""
    number = (value - field.offset) / field.scale
    kind = field.type
    packed = struct.pack(_FORMATS[kind], number if kind == "float32" else round(number))
    words = [int.from_bytes(packed[i : i + 2], "big") for i in range(0, len(packed), 2)]
    if field.word_order == "little":
        words.reverse()
    return {field.address + i: word for i, word in enumerate(words)}


class FarmBuses:
    """The emulated buses of one agent; ``ports`` maps bus id → the tty the agent opens."""

    def __init__(
        self,
        farm: FarmConfig,
        agent_id: str,
        scenario: DroughtScenario,
        sim_time: Callable[[], float],
    ) -> None:
        self._scenario = scenario
        self._sim_time = sim_time
        self._stop = threading.Event()
        self._sdi12_feeds: list[tuple[Sdi12Sensor, list[tuple[int, SensorConfig]]]] = []
        self._modbus: list[ModbusRtuBus] = []
        self._sdi12: list[Sdi12Bus] = []
        self.ports: dict[str, str] = {}
        sensors = farm.sensors_of(agent_id)
        for bus in farm.buses_of(agent_id):
            on_bus: dict[str, list[SensorConfig]] = defaultdict(list)
            for sensor in sensors:
                if isinstance(sensor.source, BusSource) and sensor.source.bus == bus.id:
                    on_bus[str(sensor.source.address)].append(sensor)
            if bus.driver == "modbus_rtu":
                self._modbus.append(self._modbus_bus(bus, on_bus))
                self.ports[bus.id] = self._modbus[-1].agent_path
            elif bus.driver == "sdi12":
                self._sdi12.append(self._sdi12_bus(on_bus))
                self.ports[bus.id] = self._sdi12[-1].path
        self._thread = threading.Thread(target=self._feed, name="sdi12-feed", daemon=True)

    def _value(self, sensor: SensorConfig) -> float:
        return raw_for(sensor, self._scenario.state_pct(sensor, self._sim_time()))

    def _modbus_bus(self, bus: BusConfig, on_bus: dict[str, list[SensorConfig]]) -> ModbusRtuBus:
        static: dict[int, Registers] = {}
        live: dict[int, Callable[[], Registers]] = {}
        for device in bus.devices:
            address = int(device.address)
            name = str(device.options["register_map"])
            fields = find_register_map(name, bus.farm_dir).fields
            blank: dict[int, dict[int, int]] = {3: {}, 4: {}}
            for field in fields.values():
                for register in encode_field(field, field.offset):
                    blank[field.function][register] = 0
            static[address] = {function: regs for function, regs in blank.items() if regs}
            points = [(fields[s.source.point], s) for s in on_bus.get(str(address), []) if s.source]
            live[address] = self._live_registers(points)
        return ModbusRtuBus(static, live=live)

    def _live_registers(
        self, points: list[tuple[RegisterField, SensorConfig]]
    ) -> Callable[[], Registers]:
        def current() -> Registers:
            registers: dict[int, dict[int, int]] = {3: {}, 4: {}}
            for field, sensor in points:
                registers[field.function].update(encode_field(field, self._value(sensor)))
            return registers

        return current

    def _sdi12_bus(self, on_bus: dict[str, list[SensorConfig]]) -> Sdi12Bus:
        emulated = []
        for address, sensors in on_bus.items():
            indexed = [(int(s.source.point), s) for s in sensors if s.source is not None]
            count = max(index for index, _ in indexed)
            sensor = Sdi12Sensor(address=address, values=[0.0] * count)
            self._sdi12_feeds.append((sensor, indexed))
            emulated.append(sensor)
        return Sdi12Bus(emulated)

    def _update_sdi12(self) -> None:
        for emulated, indexed in self._sdi12_feeds:
            values = list(emulated.values)
            for index, sensor in indexed:
                values[index - 1] = self._value(sensor)
            emulated.values = values

    def _feed(self) -> None:
        while not self._stop.wait(0.2):
            self._update_sdi12()

    def start(self) -> None:
        """Start every bus."""
        self._update_sdi12()
        for modbus in self._modbus:
            modbus.start()
        for sdi12 in self._sdi12:
            sdi12.start()
        self._thread.start()

    def stop(self) -> None:
        """Stop every bus."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)
        for modbus in self._modbus:
            modbus.stop()
        for sdi12 in self._sdi12:
            sdi12.stop()
