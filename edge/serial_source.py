"""Serial transport: opens the port through an injected factory, yields raw lines, and reopens
the port with backoff when the device vanishes (unplugged, USB re-enumeration)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import serial

from farmwatch_shared.backoff import Backoff
from farmwatch_shared.mcu_protocol import LineAssembler, LineError
from farmwatch_shared.problems import ProblemLog
from farmwatch_shared.serial_port import PortFactory, SerialPort

log = logging.getLogger(__name__)


class SerialLineSource:
    """Yields complete lines (or framing errors) from a serial port, surviving device loss."""

    def __init__(
        self,
        open_port: PortFactory,
        problems: ProblemLog,
        backoff: Backoff | None = None,
        name: str = "serial",
        greeting: bytes | None = None,
    ) -> None:
        self._open_port = open_port
        self._problems = problems
        self._backoff = backoff or Backoff(initial_s=0.2, max_s=10.0)
        self._name = name
        self._greeting = greeting
        self._assembler = LineAssembler()
        self._port: SerialPort | None = None
        self.reopen_count = 0

    def lines(self, stop: threading.Event) -> Iterator[bytes | LineError]:
        """Yield lines until ``stop`` is set. Use ``send`` from the same thread to answer."""
        while not stop.is_set():
            if self._port is None:
                self._port = self._open(stop)
                if self._port is None:
                    continue
                if self._greeting is not None:
                    self.send(self._greeting)
                continue
            try:
                chunk = self._port.read(max(1, min(self._port.in_waiting, 4096)))
            except (serial.SerialException, OSError) as exc:
                self._lost(exc)
                continue
            if chunk:
                yield from self._assembler.feed(chunk)
        if self._port is not None:
            _close_quietly(self._port)
            self._port = None

    def send(self, data: bytes) -> None:
        """Write to the device if it is open (a lost device is reopened by ``lines``)."""
        if self._port is None:
            return
        try:
            self._port.write(data)
        except (serial.SerialException, OSError) as exc:
            self._lost(exc)

    def _lost(self, exc: Exception) -> None:
        self._problems.report(
            "serial_lost", f"{self._name}: dispositivo perdido / device lost: {exc}"
        )
        if self._port is not None:
            _close_quietly(self._port)
        self._port = None

    def _open(self, stop: threading.Event) -> SerialPort | None:
        try:
            port = self._open_port()
        except (serial.SerialException, OSError) as exc:
            self._problems.report(
                "serial_open", f"{self._name}: no se puede abrir / cannot open: {exc}"
            )
            stop.wait(self._backoff.next_delay())
            return None
        self._backoff.reset()
        self._assembler.reset()
        self.reopen_count += 1
        log.info("Puerto serie abierto / serial port open: %s", self._name)
        return port


def _close_quietly(port: SerialPort) -> None:
    try:
        port.close()
    except (serial.SerialException, OSError) as exc:
        log.debug("closing a lost port failed: %s", exc)
