"""Units and calibration, in one place: raw device values → calibrated values per sensor config.

Pure functions; the only state (a rain gauge's previous counter) is passed in and returned.
"""

from __future__ import annotations

from dataclasses import dataclass

from farmwatch_shared.calibration.curves import CalibrationBook
from farmwatch_shared.calibration.rain import (
    CounterSample,
    RainInterval,
    counter_tips,
    rain_interval,
)
from farmwatch_shared.farm.model import (
    RainGauge,
    SensorConfig,
    SoilMoistureSensor,
    WaterLevelSensor,
)


@dataclass(frozen=True)
class Calibrated:
    """A calibrated value; ``volume_l`` for water levels; ``counter`` the gauge state to keep."""

    value: float
    volume_l: float | None = None
    counter: float | None = None


def soil_moisture_pct(sensor: SoilMoistureSensor, raw: float) -> float:
    """Volumetric water content (%) from raw probe counts by the sensor's polynomial."""
    result = 0.0
    for power, coefficient in enumerate(sensor.coefficients):
        result += coefficient * raw**power
    return result


def rain_mm(sensor: RainGauge, counter: float, previous: float | None) -> float:
    """Rain since the previous reading from the cumulative tip counter, without timing or
    boot information (``rain.counter_tips``: rollover near the top of the range, else a
    restart from zero); the first reading after a fresh install is the baseline (0 mm)."""
    if previous is None:
        return 0.0
    tips = counter_tips(sensor, CounterSample(0, round(previous)), CounterSample(0, round(counter)))
    return tips * sensor.bucket_mm


def water_level(sensor: WaterLevelSensor, raw: float) -> Calibrated:
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


def calibrate(sensor: SensorConfig, raw: float, previous_counter: float | None) -> Calibrated:
    """Calibrate one raw value for any sensor kind."""
    if isinstance(sensor, SoilMoistureSensor):
        return Calibrated(value=soil_moisture_pct(sensor, raw))
    if isinstance(sensor, RainGauge):
        return Calibrated(value=rain_mm(sensor, raw, previous_counter), counter=raw)
    return water_level(sensor, raw)


def soil_moisture_at(
    sensor: SoilMoistureSensor, raw: float, ts_ms: int, book: CalibrationBook | None
) -> float:
    """VWC (%) by the calibration record in force at ``ts_ms``, else the sensor's polynomial."""
    curve = None if book is None else book.curve_at(sensor.id, ts_ms)
    return soil_moisture_pct(sensor, raw) if curve is None else curve.apply(raw)


def rain_between(
    sensor: RainGauge, previous: CounterSample | None, sample: CounterSample
) -> RainInterval:
    """Rain between two counter samples with rollover, reboot, debounce and rate limits
    (``farmwatch_shared.calibration.rain``); ``refused`` is set when the tips are not believable."""
    return rain_interval(sensor, previous, sample)


def calibrate_at(
    sensor: SensorConfig,
    raw: float,
    ts_ms: int,
    previous_counter: float | None,
    book: CalibrationBook | None,
) -> Calibrated:
    """Like ``calibrate``, but soil moisture uses the calibration record in force at ``ts_ms``."""
    if isinstance(sensor, SoilMoistureSensor):
        return Calibrated(value=soil_moisture_at(sensor, raw, ts_ms, book))
    return calibrate(sensor, raw, previous_counter)
