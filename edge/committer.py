"""The one path from a raw sample to the outbox, for every source (microcontroller lines and
field-bus drivers alike): calibrate (records in force at the sample's time), derive rain from
counters, refuse impossible values, keep timestamps unique per sensor, commit or quarantine."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from edge.drivers.base import RawSample
from edge.outbox import Outbox
from farmwatch_shared.calibration.calibrate import calibrate_at, rain_between
from farmwatch_shared.calibration.curves import CalibrationBook
from farmwatch_shared.calibration.rain import CounterSample
from farmwatch_shared.clock import Clock
from farmwatch_shared.contract import UNITS, Reading, ReadingFlag, reading_problem
from farmwatch_shared.farm.model import RainGauge, SensorConfig
from farmwatch_shared.problems import ProblemLog

TS_NUDGE_LIMIT_MS = 1000
"""A timestamp at most this far behind the sensor's last one is a collision, moved 1 ms on;
a larger step back is the clock being corrected."""


class ReadingCommitter:
    """Calibrates, checks and commits raw samples; thread-safe (sources run on their own
    threads and share per-sensor state)."""

    def __init__(
        self,
        outbox: Outbox,
        clock: Clock,
        problems: ProblemLog,
        book: CalibrationBook | None = None,
        clock_trusted: Callable[[], bool] = lambda: True,
        boot_id: str = "",
    ) -> None:
        self._outbox = outbox
        self._clock = clock
        self._problems = problems
        self._book = book
        self._clock_trusted = clock_trusted
        self._boot_id = boot_id
        self._lock = threading.Lock()

    def commit(
        self,
        sensor: SensorConfig,
        sample: RawSample,
        *,
        state: Mapping[str, float] | None = None,
        counter_boot: int | None = None,
    ) -> Reading | None:
        """Commit ``sample`` of ``sensor`` with ``state`` in one transaction; return the reading,
        or None when it was quarantined (``state`` is kept either way). ``counter_boot``
        identifies the counting run of a rain gauge's counter (the microcontroller's boot)."""
        with self._lock:
            return self._commit(sensor, sample, dict(state or {}), counter_boot)

    def refuse(self, cause: str, detail: str, state: Mapping[str, float] | None = None) -> None:
        """Count, log (once per cause) and quarantine an input that cannot be used."""
        self._problems.report(cause, detail)
        self._outbox.quarantine(self._clock.now_ms(), cause, detail, state or {})

    def _commit(
        self,
        sensor: SensorConfig,
        sample: RawSample,
        state: dict[str, float],
        counter_boot: int | None,
    ) -> Reading | None:
        ts = self._unique_ts(sensor.id, sample.ts_ms)
        state[f"{sensor.id}.last_ts"] = float(ts)
        volume = None
        if isinstance(sensor, RainGauge):
            value, refused = self._rain(sensor, ts, sample.raw, counter_boot, state)
            if refused is not None:
                self.refuse(refused, f"{sensor.id}: counter {sample.raw}", state)
                return None
        else:
            calibrated = calibrate_at(sensor, sample.raw, ts, None, self._book)
            value, volume = calibrated.value, calibrated.volume_l
        flags = 0 if self._clock_trusted() else ReadingFlag.CLOCK_UNSYNCED
        candidate = Reading(
            seq=0,
            sensor=sensor.id,
            kind=sensor.kind,
            ts=ts,
            value=round(value, 4),
            unit=UNITS[sensor.kind],
            raw=sample.raw,
            volume_l=None if volume is None else round(volume, 2),
            flags=flags,
        )
        problem = reading_problem(candidate)
        if problem is not None:
            detail = f"{sensor.id}: raw {sample.raw} → {candidate.value} {candidate.unit}"
            self.refuse(f"impossible_{problem}", detail, state)
            return None
        held = bool(flags & ReadingFlag.CLOCK_UNSYNCED)
        return self._outbox.add(
            sensor=candidate.sensor,
            kind=candidate.kind,
            ts=ts,
            value=candidate.value,
            unit=candidate.unit,
            raw=candidate.raw,
            volume_l=candidate.volume_l,
            flags=flags,
            state=state,
            mono_ms=sample.mono_ms if held else None,
            boot_id=self._boot_id if held else None,
        )

    def _unique_ts(self, sensor_id: str, ts: int) -> int:
        # (series, time) is a point's identity in InfluxDB: two readings of one sensor must not
        # share a timestamp, or the second would overwrite the first.
        last_ts = self._outbox.sensor_state(f"{sensor_id}.last_ts")
        if last_ts is not None and last_ts - TS_NUDGE_LIMIT_MS < ts <= last_ts:
            return int(last_ts) + 1
        return ts

    def _rain(
        self,
        sensor: RainGauge,
        ts: int,
        raw: float,
        counter_boot: int | None,
        state: dict[str, float],
    ) -> tuple[float, str | None]:
        key = sensor.id
        last_counter = self._outbox.sensor_state(f"{key}.counter")
        last_ts = self._outbox.sensor_state(f"{key}.counter_ts")
        last_boot = self._outbox.sensor_state(f"{key}.counter_boot")
        previous = (
            None
            if last_counter is None or last_ts is None
            else CounterSample(
                int(last_ts), int(last_counter), None if last_boot is None else int(last_boot)
            )
        )
        current = CounterSample(ts, round(raw), counter_boot)
        interval = rain_between(sensor, previous, current)
        state[f"{key}.counter"] = float(current.counter)
        state[f"{key}.counter_ts"] = float(ts)
        if counter_boot is not None:
            state[f"{key}.counter_boot"] = float(counter_boot)
        return interval.mm, interval.refused
