"""A serial port as the services need it (pyserial behind a factory, so tests use ptys)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import serial


class SerialPort(Protocol):
    """What the agent needs of a pyserial port."""

    def read(self, size: int = 1) -> bytes:
        """Up to ``size`` bytes; fewer (or none) when the read timeout passes."""

    def write(self, data: bytes, /) -> int | None:
        """Write ``data``; the number of bytes written."""

    @property
    def in_waiting(self) -> int:
        """Bytes received and not yet read."""

    def close(self) -> None:
        """Close the port."""


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
