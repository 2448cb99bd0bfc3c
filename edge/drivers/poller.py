"""Polls the devices of a field bus at their intervals and commits what they report.

``BusPoller`` (one per bus, one thread each) asks the bus's driver for the points its sensors
need, when each device is due, and hands ``RawSample``s to a sink. ``OutboxSink`` is the sink the
agent uses: it calibrates on the same path as microcontroller readings (the committer) and
commits to the outbox, or quarantines. A device that fails (or whose answer the driver cannot
handle) is counted and reported; the others go on. ``build_pollers`` assembles it all from the
farm file.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence

import serial

from edge.committer import ReadingCommitter
from edge.drivers.base import BusDriver, DriverError, DriverSpec, RawSample
from edge.drivers.registry import driver_spec
from farmwatch_shared.clock import Clock
from farmwatch_shared.farm.model import (
    BusConfig,
    BusDevice,
    BusSource,
    FarmConfig,
    SensorConfig,
)
from farmwatch_shared.problems import ProblemLog

log = logging.getLogger(__name__)
Sink = Callable[[RawSample], None]


class BusPoller:
    """Polls one bus's devices, each at its own interval, and feeds a sink."""

    def __init__(
        self,
        bus: BusConfig,
        driver: BusDriver,
        sensors: Sequence[SensorConfig],
        sink: Sink,
        clock: Clock,
        problems: ProblemLog,
    ) -> None:
        self.bus = bus
        self._driver = driver
        self._sink = sink
        self._clock = clock
        self._problems = problems
        self._points: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        for sensor in sensors:
            if isinstance(sensor.source, BusSource) and sensor.source.bus == bus.id:
                address = str(sensor.source.address)
                self._points[address][sensor.source.point].append(sensor.id)
        self._devices: list[BusDevice] = [d for d in bus.devices if str(d.address) in self._points]
        start = clock.monotonic()
        self._due = {str(d.address): start for d in self._devices}
        self.polls = 0
        self.failures: dict[str, int] = defaultdict(int)

    def poll_due(self) -> float:
        """Poll every device that is due; return the seconds until the next one is."""
        now = self._clock.monotonic()
        for device in self._devices:
            address = str(device.address)
            if self._due[address] > now:
                continue
            self._poll(device)
            # keep the schedule (no drift) unless polling fell behind by a whole interval
            self._due[address] = max(self._due[address] + device.interval_s, now)
        if not self._due:
            return 60.0
        return max(0.0, min(self._due.values()) - self._clock.monotonic())

    def _poll(self, device: BusDevice) -> None:
        address = str(device.address)
        points = self._points[address]
        self.polls += 1
        try:
            values = self._driver.read(device, list(points))
        except DriverError as exc:
            self.failures[address] += 1
            self._problems.report(
                "device_failed",
                f"{self.bus.id} dispositivo / device {address}: sin lectura / no reading "
                f"({exc.cause}: {exc.detail})",
            )
            return
        except (serial.SerialException, OSError) as exc:
            self.failures[address] += 1
            self._problems.report("bus_io", f"{self.bus.id} ({self.bus.port}): {exc}")
            return
        except Exception as exc:  # noqa: BLE001 - one device's answer that a driver could not
            # handle is that device's failed poll, never the end of polling for the whole bus
            self.failures[address] += 1
            self._problems.report(
                "driver_error",
                f"{self.bus.id} dispositivo / device {address}: {type(exc).__name__}: {exc}",
            )
            return
        ts, mono_ms = self._clock.now_ms(), int(self._clock.monotonic() * 1000)
        for point, value in values.items():
            for sensor_id in points.get(point, ()):
                self._sink(RawSample(sensor_id, value, ts, mono_ms))

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop`` is set, then close the bus."""
        try:
            while not stop.is_set():
                stop.wait(self.poll_due())
        finally:
            self.close()

    def close(self) -> None:
        """Close the bus (the driver's port)."""
        self._driver.close()


class OutboxSink:
    """The agent's sink: commits each raw sample through the shared ``ReadingCommitter``."""

    def __init__(self, sensors: Sequence[SensorConfig], committer: ReadingCommitter) -> None:
        self._by_id = {s.id: s for s in sensors}
        self._committer = committer

    def __call__(self, sample: RawSample) -> None:
        """Commit one raw sample."""
        sensor = self._by_id.get(sample.sensor)
        if sensor is None:
            self._committer.refuse("unknown_sensor", f"{sample.sensor!r}")
            return
        self._committer.commit(sensor, sample)


def check_buses(
    farm: FarmConfig,
    agent_id: str,
    spec_for: Callable[[str], DriverSpec] = driver_spec,
) -> list[tuple[BusConfig, DriverSpec]]:
    """Check every bus of ``agent_id`` against its driver without opening anything (for
    ``--check-config``); raise ValueError (UnknownDriverError, a register map problem…)."""
    sensors = farm.sensors_of(agent_id)
    checked = []
    for bus in farm.buses_of(agent_id):
        spec = spec_for(bus.driver)
        points: dict[str, list[str]] = defaultdict(list)
        for sensor in sensors:
            if isinstance(sensor.source, BusSource) and sensor.source.bus == bus.id:
                points[str(sensor.source.address)].append(sensor.source.point)
        spec.check(bus, points)
        checked.append((bus, spec))
    return checked


def build_pollers(
    farm: FarmConfig,
    agent_id: str,
    sink: Sink,
    clock: Clock,
    problems: ProblemLog,
    spec_for: Callable[[str], DriverSpec] = driver_spec,
) -> list[BusPoller]:
    """One poller per bus of ``agent_id`` in the farm file, drivers checked (``check_buses``)
    before any is opened."""
    sensors = farm.sensors_of(agent_id)
    return [
        BusPoller(bus, spec.build(bus, problems, clock), sensors, sink, clock, problems)
        for bus, spec in check_buses(farm, agent_id, spec_for)
    ]
