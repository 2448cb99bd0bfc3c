"""An emulated RS-485 Modbus RTU bus: pymodbus's own RTU server behind a pty, with a fault relay.

Two pseudo-terminal pairs joined by a byte relay: pymodbus's ``ModbusSerialServer`` opens one tty
(the devices), the agent opens the other (``agent_path``) with its own pymodbus client, exactly as
it would open a USB RS-485 adapter. The relay can corrupt response bytes (CRC errors on the wire)
and drop requests to an address (a dead or disconnected device stays silent).
"""

from __future__ import annotations

import asyncio
import errno
import functools
import os
import select
import termios
import threading
import tty
from collections.abc import Callable, Mapping

from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

Registers = Mapping[int, Mapping[int, int]]
"""{function code (3 holding / 4 input): {register: 16-bit word}} of one device."""


def _raw_pty() -> tuple[int, int, str]:
    master, slave = os.openpty()
    tty.setraw(master, termios.TCSANOW)
    tty.setraw(slave, termios.TCSANOW)
    return master, slave, os.ttyname(slave)


def _blocks(words: Mapping[int, int]) -> list[SimData]:
    runs: list[tuple[int, list[int]]] = []
    for register in sorted(words):
        if runs and runs[-1][0] + len(runs[-1][1]) == register:
            runs[-1][1].append(words[register])
        else:
            runs.append((register, [words[register]]))
    return [SimData(start, values=values, datatype=DataType.REGISTERS) for start, values in runs]


class ModbusRtuBus:
    """Devices (unit id → registers) served by pymodbus on a pty; the agent opens ``agent_path``."""

    def __init__(
        self,
        devices: Mapping[int, Registers],
        baudrate: int = 9600,
        live: Mapping[int, Callable[[], Registers]] | None = None,
    ) -> None:
        """``live`` gives, per unit, a function returning the registers' current values: they are
        refreshed on every request (a sensor whose reading changes); registers must exist in
        ``devices``."""
        self._dev_master, self._dev_slave, self._dev_path = _raw_pty()
        self._agent_master, self._agent_slave, self.agent_path = _raw_pty()
        self._baudrate = baudrate
        self._live = dict(live or {})
        self._sim = [
            SimDevice(
                id=unit,
                simdata=(
                    [SimData(0, values=[False], datatype=DataType.BITS)],
                    [SimData(0, values=[False], datatype=DataType.BITS)],
                    _blocks(regs.get(3, {0: 0})),
                    _blocks(regs.get(4, {0: 0})),
                ),
                action=functools.partial(self._refresh, unit) if unit in self._live else None,
            )
            for unit, regs in devices.items()
        ]
        self._lock = threading.Lock()
        self._corrupt = 0
        self._silent: set[int] = set()
        self.requests_seen = 0
        self.requests_dropped = 0
        self.responses_corrupted = 0
        self._stop = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._server: ModbusSerialServer | None = None
        self._threads = [
            threading.Thread(target=self._loop.run_forever, name="modbus-server", daemon=True),
            threading.Thread(target=self._relay, name="modbus-relay", daemon=True),
        ]

    def start(self) -> ModbusRtuBus:
        """Start the server and the relay."""
        for thread in self._threads:
            thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)
        return self

    async def _serve(self) -> ModbusSerialServer:
        server = ModbusSerialServer(self._sim, port=self._dev_path, baudrate=self._baudrate)
        await server.serve_forever(background=True)
        return server

    async def _refresh(
        self,
        unit: int,
        function: int,
        start: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> None:
        for register, word in self._live[unit]().get(function, {}).items():
            if 0 <= register - start < len(registers):
                registers[register - start] = word

    def corrupt_responses(self, count: int) -> None:
        """Flip a bit in the next ``count`` responses (the agent sees a CRC error)."""
        with self._lock:
            self._corrupt += count

    def silence(self, unit: int, silent: bool = True) -> None:
        """Drop requests to ``unit`` (the device does not answer)."""
        with self._lock:
            (self._silent.add if silent else self._silent.discard)(unit)

    def _relay(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._agent_master, self._dev_master], [], [], 0.05)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError as exc:
                    if exc.errno == errno.EIO:
                        continue
                    raise
                if fd == self._agent_master:
                    self._to_devices(data)
                else:
                    self._to_agent(data)

    def _to_devices(self, data: bytes) -> None:
        with self._lock:
            self.requests_seen += 1
            if data and data[0] in self._silent:
                self.requests_dropped += 1
                return
        os.write(self._dev_master, data)

    def _to_agent(self, data: bytes) -> None:
        with self._lock:
            if self._corrupt and data:
                self._corrupt -= 1
                self.responses_corrupted += 1
                data = data[:-3] + bytes([data[-3] ^ 0x10]) + data[-2:]
        os.write(self._agent_master, data)

    def stop(self) -> None:
        """Stop the server and the relay; close the ptys."""
        if self._server is not None:
            closing = self._server.shutdown()  # type: ignore[no-untyped-call]
            asyncio.run_coroutine_threadsafe(closing, self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._stop.set()
        for thread in self._threads:
            thread.join(2)
        for fd in (self._dev_master, self._dev_slave, self._agent_master, self._agent_slave):
            os.close(fd)
