"""A serial port as the services need it (pyserial behind a factory, so tests use ptys)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import serial


class SerialPort(Protocol):
    """What the agent needs of a pyserial port."""

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...

    @property
    def in_waiting(self) -> int: ...

    def close(self) -> None: ...


PortFactory = Callable[[], SerialPort]


def pyserial_factory(path: str, baudrate: int, read_timeout_s: float = 0.2) -> PortFactory:
    """A factory opening ``path`` with pyserial, 8N1, without touching modem-control lines."""

    def open_port() -> SerialPort:
        port = serial.Serial()
        port.port = path
        port.baudrate = baudrate
        port.timeout = read_timeout_s
        port.exclusive = True
        port.open()
        return port

    return open_port
