"""Modbus RTU over RS-485 (pymodbus client on pyserial), register maps declared as data.

Transport: a pymodbus ``ModbusSerialClient`` (injected; pymodbus does framing and CRC).
Parser: ``decode_field`` turns registers into a value by the map (type, word order, scale).
Assembly: ``ModbusRtuDriver.read`` reads the registers a device's points need, in as few
requests as possible, retrying timeouts and CRC errors and reporting each one.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from pymodbus.client import ModbusSerialClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

from edge.drivers.base import BusDriver, DriverError, DriverSpec
from edge.drivers.crc import modbus_frame_ok
from farmwatch_shared.clock import Clock
from farmwatch_shared.farm.model import BusConfig, BusDevice
from farmwatch_shared.farm.register_maps import RegisterField, RegisterMap, find_register_map
from farmwatch_shared.problems import ProblemLog

log = logging.getLogger(__name__)
MAX_REGISTERS_PER_REQUEST = 125
_STRUCT = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "float32": ">f"}
_RETRYABLE_EXCEPTIONS = frozenset({5, 6})  # acknowledge (busy), server device busy


def decode_field(field: RegisterField, registers: Sequence[int]) -> float:
    """Value of ``field`` from its own registers (``field.width`` of them), scaled."""
    if len(registers) != field.width:
        raise ValueError(f"{field.type} needs {field.width} registers, got {len(registers)}")
    words = list(registers)
    if field.word_order == "little":
        words.reverse()
    raw = b"".join(w.to_bytes(2, "big") for w in words)
    (value,) = struct.unpack(_STRUCT[field.type], raw)
    return float(value) * field.scale + field.offset


def plan_requests(
    fields: Sequence[RegisterField],
) -> list[tuple[int, int, int]]:
    """(function, start, count) requests covering ``fields``: adjacent or overlapping fields
    share one request; gaps are not read across (devices answer "illegal address" for them)."""
    plan: list[tuple[int, int, int]] = []
    for function in (3, 4):
        spans = sorted((f.address, f.address + f.width) for f in fields if f.function == function)
        start = end = -1
        for lo, hi in spans:
            if start < 0:
                start, end = lo, hi
            elif lo <= end and max(end, hi) - start <= MAX_REGISTERS_PER_REQUEST:
                end = max(end, hi)
            else:
                plan.append((function, start, end - start))
                start, end = lo, hi
        if start >= 0:
            plan.append((function, start, end - start))
    return plan


PacketTrace = Callable[[bool, bytes], bytes]


class ModbusClient(Protocol):
    """What the driver needs of a pymodbus sync client."""

    def connect(self) -> bool:
        """Open the serial port; False if it cannot be opened."""

    def close(self) -> None:
        """Close the serial port."""

    def read_holding_registers(
        self, address: int, *, count: int = 1, device_id: int = 1
    ) -> ModbusPDU:
        """Function 3: ``count`` holding registers from ``address`` of unit ``device_id``."""

    def read_input_registers(
        self, address: int, *, count: int = 1, device_id: int = 1
    ) -> ModbusPDU:
        """Function 4: ``count`` input registers from ``address`` of unit ``device_id``."""


class ModbusRtuDriver:
    """Reads devices on one RS-485 bus by their register maps."""

    def __init__(
        self,
        bus: BusConfig,
        client_factory: Callable[[PacketTrace], ModbusClient],
        maps: Mapping[str, RegisterMap],
        problems: ProblemLog,
        clock: Clock,
    ) -> None:
        self._bus = bus
        self._client = client_factory(self.trace_packet)
        self._maps = maps
        self._problems = problems
        self._clock = clock
        self._received = bytearray()
        self.requests = 0

    def trace_packet(self, sending: bool, data: bytes) -> bytes:
        """pymodbus hook: keeps what came back so a failed request can be classified."""
        if not sending:
            self._received += data
        return data

    def read(self, device: BusDevice, points: Sequence[str]) -> Mapping[str, float]:
        """Raw values of ``points`` (register-map field names) of ``device``."""
        unit = int(device.address)
        register_map = self._maps[str(device.options["register_map"])]
        fields = {p: register_map.fields[p] for p in points}
        registers: dict[tuple[int, int], int] = {}
        for function, start, count in plan_requests(list(fields.values())):
            words = self._request(unit, function, start, count)
            for i, word in enumerate(words):
                registers[(function, start + i)] = word
        values: dict[str, float] = {}
        for name, field in fields.items():
            span = [registers[(field.function, field.address + i)] for i in range(field.width)]
            values[name] = decode_field(field, span)
        return values

    def _request(self, unit: int, function: int, start: int, count: int) -> list[int]:
        where = f"{self._bus.id} unit {unit} fc{function} @{start}+{count}"
        last = DriverError("modbus_failed", where)
        for attempt in range(self._bus.retries + 1):
            if attempt:
                self._clock.sleep(min(0.05 * attempt, 0.5))
            self._received.clear()
            self.requests += 1
            try:
                if not self._client.connect():
                    raise DriverError("modbus_port", f"{self._bus.port}: cannot open")
                read = (
                    self._client.read_holding_registers
                    if function == 3
                    else self._client.read_input_registers
                )
                response = read(start, count=count, device_id=unit)
            except ModbusException as exc:
                cause = self._classify()
                last = DriverError(cause, f"{where}: {exc}")
                self._problems.report(cause, last.detail)
                continue
            if response.isError():
                code = response.exception_code
                last = DriverError("modbus_exception", f"{where}: exception code {code}")
                self._problems.report("modbus_exception", last.detail)
                if code in _RETRYABLE_EXCEPTIONS:
                    continue
                raise last
            words = list(response.registers)
            if len(words) != count:
                last = DriverError("modbus_short", f"{where}: {len(words)} registers")
                self._problems.report("modbus_short", last.detail)
                continue
            return words
        raise last

    def _classify(self) -> str:
        if not self._received:
            return "modbus_timeout"
        if not modbus_frame_ok(bytes(self._received)):
            return "modbus_crc"
        return "modbus_bad_response"

    def close(self) -> None:
        """Close the serial port."""
        self._client.close()


def _check(bus: BusConfig, points_by_address: Mapping[str, Sequence[str]]) -> None:
    for device in bus.devices:
        try:
            unit = int(device.address)
        except ValueError:
            raise ValueError(f"bus {bus.id}: Modbus address {device.address!r}") from None
        if not 1 <= unit <= 247:
            raise ValueError(f"bus {bus.id}: Modbus address {unit} outside 1–247")
        name = device.options.get("register_map")
        if not isinstance(name, str):  # a farm-file mistake: the ValueError --check-config reports
            raise ValueError(f"bus {bus.id} device {unit}: set options.register_map")  # noqa: TRY004
        register_map = find_register_map(name, bus.farm_dir)
        for point in points_by_address.get(str(device.address), ()):
            if point not in register_map.fields:
                raise ValueError(f"bus {bus.id} device {unit}: {name} has no field {point!r}")


def pymodbus_client_factory(bus: BusConfig) -> Callable[[PacketTrace], ModbusClient]:
    """Builds pymodbus's serial RTU client for ``bus`` (retries are the driver's, not its)."""

    def make(trace: PacketTrace) -> ModbusClient:
        return ModbusSerialClient(
            bus.port,
            baudrate=bus.baudrate,
            parity=bus.parity,
            stopbits=bus.stopbits,
            timeout=bus.timeout_s,
            retries=0,
            trace_packet=trace,
        )

    return make


def _build(bus: BusConfig, problems: ProblemLog, clock: Clock) -> BusDriver:
    names = {str(d.options["register_map"]) for d in bus.devices}
    maps = {n: find_register_map(n, bus.farm_dir) for n in names}
    return ModbusRtuDriver(bus, pymodbus_client_factory(bus), maps, problems, clock)


DRIVER = DriverSpec(name="modbus_rtu", check=_check, build=_build)
