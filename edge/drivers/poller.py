"""Polls the devices of a field bus at their intervals and commits what they report.

``BusPoller`` (one per bus, one thread each) asks the bus's driver for the points its sensors
need, when each device is due, and hands ``RawSample``s to a sink. ``OutboxSink`` is the sink the
agent uses: it calibrates on the same path as microcontroller readings (``edge.calibration``,
``reading_problem``) and commits to the outbox, or quarantines. A device that fails is counted
and reported; the others go on. ``build_pollers`` assembles it all from the farm file.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence

import serial

from edge.calibration import calibrate_at, rain_between
from edge.calibration_records import CalibrationBook
from edge.drivers.base import BusDriver, DriverError, DriverSpec, RawSample
from edge.drivers.registry import driver_spec
from edge.farmconfig import BusConfig, BusDevice, FarmConfig, RainGauge, SensorConfig
from edge.outbox import Outbox
from edge.rain import CounterSample
from farmwatch_shared.clock import Clock
from farmwatch_shared.contract import UNITS, Reading, ReadingFlag, reading_problem
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
            if sensor.source is not None and sensor.source.bus == bus.id:
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
    """Calibrates raw samples, checks them and commits them to the outbox (or quarantines)."""

    def __init__(
        self,
        sensors: Sequence[SensorConfig],
        outbox: Outbox,
        clock: Clock,
        problems: ProblemLog,
        book: CalibrationBook | None = None,
        clock_trusted: Callable[[], bool] = lambda: True,
        boot_id: str = "",
    ) -> None:
        self._by_id = {s.id: s for s in sensors}
        self._outbox = outbox
        self._clock = clock
        self._problems = problems
        self._book = book
        self._clock_trusted = clock_trusted
        self._boot_id = boot_id
        self._lock = threading.Lock()  # several buses may commit rain state concurrently

    def __call__(self, sample: RawSample) -> None:
        """Commit one raw sample."""
        with self._lock:
            self._commit(sample)

    def _commit(self, sample: RawSample) -> None:
        sensor = self._by_id.get(sample.sensor)
        if sensor is None:
            self._refuse("unknown_sensor", f"{sample.sensor!r}")
            return
        state: dict[str, float] = {}
        volume = None
        if isinstance(sensor, RainGauge):
            value, refused = self._rain(sensor, sample, state)
            if refused is not None:
                self._refuse(refused, f"{sensor.id}: counter {sample.raw}", state)
                return
        else:
            calibrated = calibrate_at(sensor, sample.raw, sample.ts_ms, None, self._book)
            value, volume = calibrated.value, calibrated.volume_l
        candidate = Reading(
            seq=0,
            sensor=sensor.id,
            kind=sensor.kind,
            ts=sample.ts_ms,
            value=round(value, 4),
            unit=UNITS[sensor.kind],
            raw=sample.raw,
            volume_l=None if volume is None else round(volume, 2),
            flags=0 if self._clock_trusted() else ReadingFlag.CLOCK_UNSYNCED,
        )
        problem = reading_problem(candidate)
        if problem is not None:
            detail = f"{sensor.id}: raw {sample.raw} → {candidate.value} {candidate.unit}"
            self._refuse(f"impossible_{problem}", detail, state)
            return
        self._outbox.add(
            sensor=candidate.sensor,
            kind=candidate.kind,
            ts=candidate.ts,
            value=candidate.value,
            unit=candidate.unit,
            raw=candidate.raw,
            volume_l=candidate.volume_l,
            flags=candidate.flags,
            state=state,
            mono_ms=sample.mono_ms,
            boot_id=self._boot_id if sample.mono_ms is not None else None,
        )

    def _rain(
        self, sensor: RainGauge, sample: RawSample, state: dict[str, float]
    ) -> tuple[float, str | None]:
        counter_key, ts_key = f"{sensor.id}.bus_counter", f"{sensor.id}.bus_counter_ts"
        last_counter = self._outbox.sensor_state(counter_key)
        last_ts = self._outbox.sensor_state(ts_key)
        previous = (
            None
            if last_counter is None or last_ts is None
            else CounterSample(int(last_ts), int(last_counter))
        )
        current = CounterSample(sample.ts_ms, round(sample.raw))
        interval = rain_between(sensor, previous, current)
        state[counter_key] = float(current.counter)
        state[ts_key] = float(current.ts_ms)
        return interval.mm, interval.refused

    def _refuse(self, cause: str, detail: str, state: Mapping[str, float] | None = None) -> None:
        self._problems.report(cause, detail)
        self._outbox.quarantine(self._clock.now_ms(), cause, detail, state or {})


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
            if sensor.source is not None and sensor.source.bus == bus.id:
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


def start_pollers(pollers: Sequence[BusPoller], stop: threading.Event) -> list[threading.Thread]:
    """Run each poller in its own daemon thread until ``stop`` is set."""
    threads = [
        threading.Thread(target=p.run, args=(stop,), name=f"bus-{p.bus.id}", daemon=True)
        for p in pollers
    ]
    for thread in threads:
        thread.start()
    return threads
