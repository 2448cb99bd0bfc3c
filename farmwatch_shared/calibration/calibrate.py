"""The one entry point of calibration: ``Calibrator.calibrate`` turns a sensor's raw device value
into its calibrated value, for every sensor kind.

- soil moisture: the calibration record in force at the reading's time (``curves``), else the
  sensor's own polynomial;
- rain: the tipping-bucket counter pipeline (``rain``), from the previous counter sample kept
  in the sensor's state, with the cause when the tips are not believable;
- water level: the transducer and the vessel's geometry (``vessels``).

A raw value that is not a finite number (a Modbus float32 NaN, the usual sensor-fault value,
or an infinity) is refused here, for every kind, before any table, curve or counter sees it;
so is a rain counter that is no counter (negative, fractional, beyond its modulo). A refused
sample never becomes a rain gauge's baseline: the previous counter sample stays.

Pure: the only state (a sensor's ``SensorState``) is passed in, and what to keep is returned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from farmwatch_shared.calibration.curves import CalibrationBook
from farmwatch_shared.calibration.rain import CounterSample, rain_interval
from farmwatch_shared.farm.model import (
    RainGauge,
    SensorConfig,
    SoilMoistureSensor,
    WaterLevelSensor,
)


@dataclass(frozen=True)
class SensorState:
    """What is kept for a sensor between two of its readings."""

    last_ts: int | None = None
    """Timestamp (ms) of its last committed or quarantined reading."""
    counter: CounterSample | None = None
    """A rain gauge's last counter sample: the baseline of the next interval."""


@dataclass(frozen=True)
class Calibrated:
    """A calibrated value; ``volume_l`` for water levels. ``refused`` says why the sample cannot
    be used (the value is then 0). For rain gauges ``counter`` is the counter sample to keep as
    the next baseline: the new one when only its tips were not believed (a burst, bounce), the
    previous one when the sample itself is no counter value."""

    value: float
    volume_l: float | None = None
    counter: CounterSample | None = None
    refused: str | None = None


class Calibrator:
    """Calibrates raw values of every sensor kind, with a farm's calibration records."""

    def __init__(self, book: CalibrationBook) -> None:
        self._book = book

    def calibrate(
        self,
        sensor: SensorConfig,
        raw: float,
        ts_ms: int,
        previous: SensorState,
        counter_boot: int | None = None,
    ) -> Calibrated:
        """Calibrate ``raw`` of ``sensor`` taken at ``ts_ms``; ``previous`` is the sensor's kept
        state, ``counter_boot`` identifies a rain gauge counter's counting run (the
        microcontroller's boot; None for counters without one)."""
        if not math.isfinite(raw):
            return Calibrated(value=0.0, counter=previous.counter, refused="raw_not_finite")
        if isinstance(sensor, SoilMoistureSensor):
            return Calibrated(value=self._soil_moisture_pct(sensor, raw, ts_ms))
        if isinstance(sensor, RainGauge):
            if not (0 <= raw < sensor.counter_modulo and raw.is_integer()):
                return Calibrated(value=0.0, counter=previous.counter, refused="rain_bad_counter")
            return _rain(sensor, CounterSample(ts_ms, int(raw), counter_boot), previous)
        return _water_level(sensor, raw)

    def _soil_moisture_pct(self, sensor: SoilMoistureSensor, raw: float, ts_ms: int) -> float:
        curve = self._book.curve_at(sensor.id, ts_ms)
        if curve is not None:
            return curve.apply(raw)
        result = 0.0
        for power, coefficient in enumerate(sensor.coefficients):
            result += coefficient * raw**power
        return result


def _rain(gauge: RainGauge, sample: CounterSample, previous: SensorState) -> Calibrated:
    interval = rain_interval(gauge, previous.counter, sample)
    return Calibrated(value=interval.mm, counter=sample, refused=interval.refused)


def _water_level(sensor: WaterLevelSensor, raw: float) -> Calibrated:
    """Level (% of usable height) and volume (L) from a distance or pressure reading.

    Small overshoots within the sensor's clamp margin are clamped to 0–100 %; larger ones are
    returned unclamped so that the plausibility check quarantines them.
    """
    height = sensor.vessel.usable_height_mm
    level_mm = sensor.transducer.level_mm(raw)
    pct = level_mm / height * 100.0
    margin = sensor.clamp_margin_pct
    if -margin <= pct < 0.0:
        pct, level_mm = 0.0, 0.0
    elif 100.0 < pct <= 100.0 + margin:
        pct, level_mm = 100.0, height
    volume = sensor.vessel.volume_l(min(max(level_mm, 0.0), height))
    return Calibrated(value=pct, volume_l=volume)
