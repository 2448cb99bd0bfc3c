"""Weather and water-use scenarios that drive the emulated sensors.

A scenario gives the physical state of a farm at a simulated time (rain so far, tank and trough
levels, soil moisture); ``raw_for`` turns that state into what each sensor's electronics would
report, inverting the sensor's configured calibration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from farmwatch_shared.calibration.vessels import (
    DepthTransducer,
    PressureTransducer,
    UltrasonicTransducer,
)
from farmwatch_shared.farm.model import (
    RainGauge,
    SensorConfig,
    SoilMoistureSensor,
    WaterLevelSensor,
)

HOUR = 3600.0
DAY = 24 * HOUR


@dataclass(frozen=True)
class Storm:
    """A rain event: start (s of simulated time), duration (s) and total rain (mm)."""

    start_s: float
    duration_s: float
    total_mm: float


@dataclass(frozen=True)
class ValveFault:
    """A trough's float valve stuck shut from ``start_s`` to ``end_s`` (simulated time): the
    herd drinks the level down, linearly from where it was to ``low_pct`` at ``end_s``; then
    the repaired valve refills it and the trough follows its usual curve again."""

    sensor: str
    start_s: float
    end_s: float
    low_pct: float = 5.0

    def level(self, t: float, before: float) -> float:
        """The level at ``t`` inside the fault, ``before`` being the level at its start."""
        low = min(self.low_pct, before)
        return before + (low - before) * (t - self.start_s) / (self.end_s - self.start_s)


@dataclass(frozen=True)
class DroughtScenario:
    """A dry spell broken by storms: troughs drawn down by cattle, a tank refilled by rain,
    soil drying towards the wilting point and wetting after rain; optionally a trough whose
    float valve sticks for a while (``valve_faults``)."""

    storms: tuple[Storm, ...] = (Storm(2.5 * DAY, 3 * HOUR, 24.0), Storm(5.2 * DAY, 2 * HOUR, 9.0))
    tank_start_pct: float = 55.0
    tank_use_pct_per_day: float = 9.0
    tank_fill_pct_per_mm: float = 1.6
    trough_use_pct_per_hour: float = 6.0
    trough_refill_below_pct: float = 35.0
    soil_start_pct: float = 28.0
    soil_wilting_pct: float = 9.0
    soil_drying_days: float = 4.0
    soil_pct_per_mm: float = 0.9
    valve_faults: tuple[ValveFault, ...] = ()

    def rain_mm(self, t: float) -> float:
        """Cumulative rain up to simulated time ``t``."""
        total = 0.0
        for storm in self.storms:
            fraction = min(max((t - storm.start_s) / storm.duration_s, 0.0), 1.0)
            total += storm.total_mm * fraction
        return total

    def tank_pct(self, t: float) -> float:
        """Rainwater tank level: daily use, refilled by the rain from the roof."""
        level = (
            self.tank_start_pct
            - self.tank_use_pct_per_day * t / DAY
            + self.tank_fill_pct_per_mm * self.rain_mm(t)
        )
        return min(max(level, 0.0), 100.0)

    def trough_pct(self, t: float, phase_s: float = 0.0) -> float:
        """Trough level: cattle drink by day; the float valve refills it while the tank has
        water, otherwise it runs dry."""
        hour = ((t + phase_s) % DAY) / HOUR
        drinking = 6.0 <= hour <= 19.0
        cycle_h = (100.0 - self.trough_refill_below_pct) / self.trough_use_pct_per_hour
        into_cycle = ((t + phase_s) / HOUR) % cycle_h
        level = 100.0 - self.trough_use_pct_per_hour * into_cycle if drinking else 96.0
        if self.tank_pct(t) < 2.0:
            level = max(0.0, 100.0 - self.trough_use_pct_per_hour * (t % DAY) / HOUR)
        return min(max(level, 0.0), 100.0)

    def soil_pct(self, t: float, depth_cm: int) -> float:
        """Volumetric water content: exponential drying, a step up after rain; deeper soil
        dries more slowly."""
        tau = self.soil_drying_days * DAY * (1.0 + depth_cm / 40.0)
        value = self.soil_wilting_pct + (self.soil_start_pct - self.soil_wilting_pct) * math.exp(
            -t / tau
        )
        for storm in self.storms:
            if t > storm.start_s:
                since = t - storm.start_s
                wetting = self.soil_pct_per_mm * storm.total_mm * min(since / storm.duration_s, 1)
                value += wetting * math.exp(-since / tau) / (1.0 + depth_cm / 40.0)
        return min(value, 45.0)

    def state_pct(self, sensor: SensorConfig, t: float) -> float:
        """The physical value a sensor sees: level %, VWC %, or cumulative rain mm."""
        if isinstance(sensor, RainGauge):
            return self.rain_mm(t)
        if isinstance(sensor, SoilMoistureSensor):
            return self.soil_pct(t, sensor.depth_cm)
        if sensor.id.startswith("tank"):
            return self.tank_pct(t)
        phase_s = (sum(map(ord, sensor.id)) % 7) * HOUR
        for fault in self.valve_faults:
            if fault.sensor == sensor.id and fault.start_s <= t < fault.end_s:
                return fault.level(t, self.trough_pct(fault.start_s, phase_s))
        return self.trough_pct(t, phase_s)


def raw_for(sensor: SensorConfig, physical: float) -> float:
    """What the sensor's electronics report for a physical value (inverse calibration)."""
    if isinstance(sensor, RainGauge):
        return float(int(physical / sensor.bucket_mm + 1e-9) % sensor.counter_modulo)
    if isinstance(sensor, SoilMoistureSensor):
        return round(_invert_polynomial(sensor.coefficients, physical), 1)
    return round(_level_raw(sensor, physical), 3)


def _level_raw(sensor: WaterLevelSensor, pct: float) -> float:
    level_mm = pct / 100.0 * sensor.vessel.usable_height_mm
    transducer = sensor.transducer
    if isinstance(transducer, UltrasonicTransducer):
        return transducer.mount_height_mm - level_mm
    if isinstance(transducer, DepthTransducer):
        return level_mm - transducer.sensor_elevation_mm
    assert isinstance(transducer, PressureTransducer)
    head_mm = level_mm - transducer.sensor_elevation_mm
    return head_mm * transducer.density_kg_m3 * 9.80665 / 1e6 + transducer.offset_kpa


def _invert_polynomial(coefficients: tuple[float, ...], target: float) -> float:
    """Raw counts in 0–4095 whose polynomial value is closest to ``target`` (bisection)."""

    def value(x: float) -> float:
        return sum(c * x**p for p, c in enumerate(coefficients))

    low, high = 0.0, 4095.0
    increasing = value(high) >= value(low)
    for _ in range(60):
        middle = (low + high) / 2
        if (value(middle) < target) == increasing:
            low = middle
        else:
            high = middle
    return (low + high) / 2
