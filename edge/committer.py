"""The committer: the one path from a raw sample to the outbox, for every source
(microcontroller lines and field-bus drivers alike). It calibrates (``Calibrator``: records in
force at the sample's time, rain from counters, vessel geometry), refuses impossible values,
keeps timestamps unique per sensor, and commits the ``Reading`` or quarantines the input, with
the sensor's new ``SensorState`` in the same transaction.

Each sample is isolated: whatever goes wrong while calibrating or checking it (a value no table
expected, a bug in a curve) quarantines that sample and the source goes on. What goes wrong
while storing (the outbox's disk) is not the sample's fault: it propagates, and the agent's
supervisor stops the agent."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from edge.drivers.base import RawSample
from edge.outbox import Held, McuPosition, Outbox, StateUpdate
from farmwatch_shared.calibration.calibrate import Calibrated, Calibrator, SensorState
from farmwatch_shared.clock import Clock
from farmwatch_shared.contract import UNITS, Reading, ReadingFlag, reading_problem
from farmwatch_shared.farm.model import SensorConfig
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
        calibrator: Calibrator,
        clock_trusted: Callable[[], bool],
        boot_id: str,
    ) -> None:
        self._outbox = outbox
        self._clock = clock
        self._problems = problems
        self._calibrator = calibrator
        self._clock_trusted = clock_trusted
        self._boot_id = boot_id
        self._lock = threading.Lock()

    def commit(
        self,
        sensor: SensorConfig,
        sample: RawSample,
        position: McuPosition | None = None,
        source_state: Mapping[str, float] | None = None,
    ) -> Reading | None:
        """Commit ``sample`` of ``sensor`` (and, for a microcontroller sample, the stream
        ``position`` it moves to; for another source, the ``source_state`` it keeps, see
        ``StateUpdate.source``) in one transaction; return the reading, or None when it was
        quarantined (the state is kept either way). The position's boot is also the counting
        run of a rain gauge's counter on the microcontroller."""
        with self._lock:
            return self._commit(sensor, sample, position, source_state or {})

    def refuse(self, cause: str, detail: str, state: StateUpdate | None = None) -> None:
        """Count, log (once per cause) and quarantine an input that cannot be used."""
        self._problems.report(cause, detail)
        self._outbox.quarantine(self._clock.now_ms(), cause, detail, state)

    def _commit(
        self,
        sensor: SensorConfig,
        sample: RawSample,
        position: McuPosition | None,
        source_state: Mapping[str, float],
    ) -> Reading | None:
        previous = self._outbox.sensor_state(sensor.id)
        ts = _unique_ts(previous, sample.ts_ms)
        boot = None if position is None else position.boot
        try:
            calibrated = self._calibrator.calibrate(sensor, sample.raw, ts, previous, boot)
            state = StateUpdate(
                {sensor.id: SensorState(ts, calibrated.counter)}, position, source_state
            )
            if calibrated.refused is not None:
                self.refuse(calibrated.refused, f"{sensor.id}: raw {sample.raw}", state)
                return None
            reading = self._reading(sensor, sample, ts, calibrated)
            problem = reading_problem(reading)
        except Exception as exc:  # noqa: BLE001 - isolate the sample: any conversion error
            # quarantines it (the sensor keeps its previous baseline) and the source goes on
            kept = StateUpdate(
                {sensor.id: SensorState(ts, previous.counter)}, position, source_state
            )
            detail = f"{sensor.id}: raw {sample.raw!r}: {type(exc).__name__}: {exc}"
            self.refuse("calibration_failed", detail, kept)
            return None
        if problem is not None:
            detail = f"{sensor.id}: raw {sample.raw} → {reading.value} {reading.unit}"
            self.refuse(f"impossible_{problem}", detail, state)
            return None
        held = Held(sample.mono_ms, self._boot_id) if reading.flags else None
        return self._outbox.add(reading, state, held)

    def _reading(
        self, sensor: SensorConfig, sample: RawSample, ts: int, calibrated: Calibrated
    ) -> Reading:
        trusted = sample.own_time or self._clock_trusted()
        flags = 0 if trusted else ReadingFlag.CLOCK_UNSYNCED
        volume = calibrated.volume_l
        return Reading(
            seq=0,  # the outbox numbers it
            sensor=sensor.id,
            kind=sensor.kind,
            ts=ts,
            value=round(calibrated.value, 4),
            unit=UNITS[sensor.kind],
            raw=sample.raw,
            volume_l=None if volume is None else round(volume, 2),
            flags=flags,
        )


def _unique_ts(previous: SensorState, ts: int) -> int:
    # (series, time) is a point's identity in InfluxDB: two readings of one sensor must not
    # share a timestamp, or the second would overwrite the first.
    last_ts = previous.last_ts
    if last_ts is not None and last_ts - TS_NUDGE_LIMIT_MS < ts <= last_ts:
        return last_ts + 1
    return ts
