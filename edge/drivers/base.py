"""The driver interface: a bus driver reads named points of one device and returns raw values.

A driver has three parts: a transport (a serial port or a protocol client, injected), a pure
frame parser (bytes or registers → values, no I/O) and the assembly (``read``), which retries,
counts and reports failures. Calibration is not a driver's business: raw values go to the
poller's sink, which calibrates them on the same path as microcontroller readings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from farmwatch_shared.clock import Clock
from farmwatch_shared.farm.model import BusConfig, BusDevice
from farmwatch_shared.problems import ProblemLog


@dataclass(frozen=True)
class RawSample:
    """One raw value of one sensor, as the device reported it, and when it was taken."""

    sensor: str
    raw: float
    ts_ms: int
    mono_ms: int
    """The agent's monotonic clock at the read, in ms (lets the outbox re-time readings taken
    while the wall clock was not trusted)."""
    own_time: bool = False
    """``ts_ms`` is the sample's own time from another clock (a LoRaWAN network server's), not
    the agent's: the reading does not wait for the agent's clock to be trusted."""


class DriverError(Exception):
    """A device could not be read this time (after retries). ``cause`` is a stable key."""

    def __init__(self, cause: str, detail: str = "") -> None:
        super().__init__(f"{cause}: {detail}" if detail else cause)
        self.cause = cause
        self.detail = detail


class BusDriver(Protocol):
    """A driver bound to one open bus."""

    def read(self, device: BusDevice, points: Sequence[str]) -> Mapping[str, float]:
        """Raw values of ``points`` of ``device``; raise DriverError if the device failed.
        A point that could not be decoded is left out (and reported) rather than failing all."""
        ...

    def close(self) -> None:
        """Release the port."""
        ...


@dataclass(frozen=True)
class DriverSpec:
    """What a driver module exposes as ``DRIVER``.

    ``check(bus, points_by_address)`` raises ValueError when the farm file asks for something
    the driver cannot do (unknown register map or point); ``build`` opens the bus.
    """

    name: str
    check: Callable[[BusConfig, Mapping[str, Sequence[str]]], None]
    build: Callable[[BusConfig, ProblemLog, Clock], BusDriver]
