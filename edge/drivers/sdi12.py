"""SDI-12 sensors through a USB SDI-12 adapter that exposes the bus as a serial port.

The adapter sends our command with the break and marking the bus needs and passes the sensor's
answer back as a line. Transport: a pyserial port (injected factory). Parser:
``edge.drivers.sdi12_protocol``. Assembly: ``Sdi12Driver.read`` runs ``aM!`` (or ``aMC!``),
waits for the service request or the announced time, then collects ``aD0!``, ``aD1!``… until
all announced values are in. A timed-out or garbled answer is retried (the data commands may be
repeated; a failed measurement is started again) and every failure is reported.

Farm file: device ``options.measure`` = "M" (default), "M1"…"M9"; ``options.crc`` = true to use
the CRC variant (``aMC!``). A sensor's ``source.point`` is the 1-based index of its value.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import serial

from edge.drivers.base import BusDriver, DriverError, DriverSpec
from edge.drivers.sdi12_protocol import (
    ADDRESS_PATTERN,
    Identification,
    Sdi12Error,
    command,
    parse_ack,
    parse_address,
    parse_data,
    parse_identification,
    parse_measurement,
)
from farmwatch_shared.clock import Clock
from farmwatch_shared.farm.model import BusConfig, BusDevice
from farmwatch_shared.problems import ProblemLog
from farmwatch_shared.serial_port import PortFactory, SerialPort, pyserial_factory

log = logging.getLogger(__name__)
T = TypeVar("T")
SERVICE_REQUEST_GRACE_S = 0.5
"""Extra time allowed after the announced ``ttt`` before asking for data anyway."""


class Sdi12Driver:
    """Reads SDI-12 sensors on one adapter."""

    def __init__(
        self,
        bus: BusConfig,
        open_port: PortFactory,
        clock: Clock,
        problems: ProblemLog,
    ) -> None:
        self._bus = bus
        self._open_port = open_port
        self._clock = clock
        self._problems = problems
        self._port: SerialPort | None = None
        self._buffer = bytearray()
        self.commands = 0

    # transport -----------------------------------------------------------------------------
    def _port_open(self) -> SerialPort:
        if self._port is None:
            try:
                self._port = self._open_port()
            except (serial.SerialException, OSError) as exc:
                raise DriverError("sdi12_port", f"{self._bus.port}: {exc}") from None
            self._buffer.clear()
        return self._port

    def _send(self, data: bytes) -> None:
        port = self._port_open()
        self._buffer.clear()
        try:
            port.read(port.in_waiting)  # stale bytes belong to no command of ours
            port.write(data)
        except (serial.SerialException, OSError) as exc:
            self.close()
            raise DriverError("sdi12_port", f"{self._bus.port}: {exc}") from None
        self.commands += 1

    def _line(self, timeout_s: float) -> bytes | None:
        """The next CR LF-terminated line, or None when ``timeout_s`` passed without one."""
        port = self._port_open()
        deadline = self._clock.monotonic() + timeout_s
        while True:
            end = self._buffer.find(b"\r\n")
            if end >= 0:
                line = bytes(self._buffer[: end + 2])
                del self._buffer[: end + 2]
                return line
            if self._clock.monotonic() >= deadline or len(self._buffer) > 256:
                self._buffer.clear()
                return None
            try:
                chunk = port.read(max(1, min(port.in_waiting, 256)))
            except (serial.SerialException, OSError) as exc:
                self.close()
                raise DriverError("sdi12_port", f"{self._bus.port}: {exc}") from None
            self._buffer += chunk

    def _ask(self, address: str, body: str) -> bytes:
        """Send a command and return its answer line, retrying silence; DriverError after."""
        for attempt in range(self._bus.retries + 1):
            self._send(command(address, body))
            line = self._line(self._bus.timeout_s)
            if line is not None:
                return line
            self._problems.report(
                "sdi12_timeout",
                f"{self._bus.id} {address}{body}!: sin respuesta / no answer (try {attempt + 1})",
            )
        raise DriverError("sdi12_timeout", f"{self._bus.id} {address}{body}!")

    # assembly ------------------------------------------------------------------------------
    def query_address(self) -> str:
        """The address of the only sensor on the bus (``?!``)."""
        return self._parsed("?", "", parse_address)

    def identify(self, address: str) -> Identification:
        """Vendor, model and version of a sensor (``aI!``)."""
        return self._parsed(address, "I", lambda line: parse_identification(line, address))

    def acknowledge(self, address: str) -> None:
        """Check that a sensor answers (``a!``)."""
        self._parsed(address, "", lambda line: parse_ack(line, address))

    def _parsed(self, address: str, body: str, parse: Callable[[bytes], T]) -> T:
        last: Sdi12Error | None = None
        for _ in range(self._bus.retries + 1):
            try:
                return parse(self._ask(address, body))
            except Sdi12Error as exc:
                last = exc
                self._problems.report(exc.cause, f"{self._bus.id} {address}{body}!: {exc.detail}")
        assert last is not None
        raise DriverError(last.cause, f"{self._bus.id} {address}{body}!: {last.detail}")

    def measure(self, address: str, measure: str = "M", crc: bool = False) -> list[float]:
        """Run one measurement and return all its values; retried as a whole when it fails."""
        body = measure if not crc else measure.replace("M", "MC", 1)
        last: DriverError | None = None
        for _ in range(self._bus.retries + 1):
            try:
                return self._measure_once(address, body, crc)
            except DriverError as exc:
                last = exc
                if exc.cause == "sdi12_port":
                    raise
        assert last is not None
        raise last

    def _measure_once(self, address: str, body: str, crc: bool) -> list[float]:
        wait_s, count = self._parsed(address, body, lambda ln: parse_measurement(ln, address))
        if count == 0:
            raise DriverError("sdi12_no_values", f"{self._bus.id} {address}{body}!: 0 values")
        if wait_s > 0:
            self._await_service_request(address, wait_s)
        values: list[float] = []
        for page in range(10):
            got = self._parsed(address, f"D{page}", lambda ln: parse_data(ln, address, crc=crc))
            if not got:
                break
            values += got
            if len(values) >= count:
                break
        if len(values) != count:
            self._problems.report(
                "sdi12_value_count",
                f"{self._bus.id} {address}{body}!: {count} announced, {len(values)} received",
            )
            raise DriverError("sdi12_value_count", f"{address}: {len(values)} of {count}")
        return values

    def _await_service_request(self, address: str, wait_s: int) -> None:
        line = self._line(wait_s + SERVICE_REQUEST_GRACE_S)
        if line is None:
            return  # no service request: the announced time is over, data must be ready
        try:
            parse_ack(line, address)
        except Sdi12Error as exc:
            self._problems.report("sdi12_service_request", f"{self._bus.id}: {exc.detail}")

    def read(self, device: BusDevice, points: Sequence[str]) -> Mapping[str, float]:
        """Values of ``points`` (1-based value indices) of one measurement of ``device``."""
        address = str(device.address)
        measure = str(device.options.get("measure", "M"))
        values = self.measure(address, measure, bool(device.options.get("crc", False)))
        result: dict[str, float] = {}
        for point in points:
            index = int(point)
            if 1 <= index <= len(values):
                result[point] = values[index - 1]
            else:
                self._problems.report(
                    "sdi12_missing_value",
                    f"{self._bus.id} {address}: value {index} of {len(values)}",
                )
        return result

    def close(self) -> None:
        """Close the adapter's port."""
        if self._port is not None:
            try:
                self._port.close()
            except (serial.SerialException, OSError) as exc:
                log.debug("closing the SDI-12 adapter failed: %s", exc)
            self._port = None


def _check(bus: BusConfig, points_by_address: Mapping[str, Sequence[str]]) -> None:
    for device in bus.devices:
        address = str(device.address)
        if not ADDRESS_PATTERN.match(address):
            raise ValueError(f"bus {bus.id}: SDI-12 address {address!r}")
        measure = str(device.options.get("measure", "M"))
        if measure not in {"M", *(f"M{i}" for i in range(1, 10))}:
            raise ValueError(f"bus {bus.id} sensor {address}: measure {measure!r}")
        for point in points_by_address.get(address, ()):
            if not point.isdigit() or not 1 <= int(point) <= 9:
                raise ValueError(f"bus {bus.id} sensor {address}: value index {point!r} (1–9)")


def _build(bus: BusConfig, problems: ProblemLog, clock: Clock) -> BusDriver:
    return Sdi12Driver(bus, pyserial_factory(bus.port, bus.baudrate, 0.05), clock, problems)


DRIVER = DriverSpec(name="sdi12", check=_check, build=_build)
