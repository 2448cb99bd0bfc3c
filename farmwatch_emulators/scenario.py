"""Weather and water-use scenarios that drive the emulated sensors.

A scenario gives the physical state of a farm at a simulated time (rain so far, tank and trough
levels, soil moisture); ``raw_for`` turns that state into what each sensor's electronics would
report, inverting the sensor's configured calibration.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

from farmwatch_shared.calibration.vessels import PressureTransducer, UltrasonicTransducer
from farmwatch_shared.farm.model import (
    FarmConfig,
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
class DroughtScenario:
    """A dry spell broken by storms: troughs drawn down by cattle, a tank refilled by rain,
    soil drying towards the wilting point and wetting after rain."""

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
        return self.trough_pct(t, phase_s=(sum(map(ord, sensor.id)) % 7) * HOUR)


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


# --- water balance: a scenario whose every litre is accounted --------------------------------


@dataclass(frozen=True)
class Delivery:
    """A water truck (or a well pump) filling one vessel: start (s), duration (s), litres."""

    vessel: str
    start_s: float
    duration_s: float
    litres: float


@dataclass(frozen=True)
class WaterPlan:
    """Known inflow and consumption of one farm's vessels.

    Rain runs off a catchment (``catchment_m2``: roof or channel area × runoff coefficient, per
    rain tank) into a gutter that empties with time constant ``gutter_s``; trucks deliver;
    cattle drink at troughs (``herd``, head per trough, else the trough's ``animals``) in a
    morning and an evening bout; a trough with ``fed_from`` is refilled by a float valve
    (proportional, ``valve_l_h`` fully open, shut at 95 %); ``other_use_l_day`` is drawn from a
    tank by day (a tap, an unmonitored trough). Overflow spills and is not harvest."""

    storms: tuple[Storm, ...] = ()
    catchment_m2: tuple[tuple[str, float], ...] = ()
    deliveries: tuple[Delivery, ...] = ()
    herd: tuple[tuple[str, int], ...] = ()
    litres_per_head_day: float = 50.0
    other_use_l_day: tuple[tuple[str, float], ...] = ()
    start_pct: tuple[tuple[str, float], ...] = ()
    valve_l_h: float = 400.0
    gutter_s: float = 1200.0
    jitter_pct: float = 0.0
    """Each level reading jitters by up to ± this % of the vessel's height (reproducibly)."""
    seed: int = 0
    """Another seed, another jitter."""


FLOWS = ("harvested", "delivered", "transferred_in", "transferred_out", "drawn", "drunk")
"""The ground-truth flows a :class:`WaterScenario` accounts per vessel (litres)."""


def _drinking_share(t: float) -> float:
    """Fraction of a day's drinking per second at ``t``: a morning bout (07–10 h, 55 %) and an
    evening bout (16–19 h, 45 %), half-sine shaped."""
    hour = (t % DAY) / HOUR
    for begin, share in ((7.0, 0.55), (16.0, 0.45)):
        if begin <= hour < begin + 3.0:
            return share * math.pi / (2 * 3 * HOUR) * math.sin(math.pi * (hour - begin) / 3.0)
    return 0.0


class WaterScenario:
    """A farm's vessels simulated minute by minute from a :class:`WaterPlan`, with every
    litre accounted (``truth``): the ground truth of the water balance tests.

    ``state_pct`` gives what the sensors see, as :class:`DroughtScenario` does (soil moisture
    from a drought scenario with the same storms)."""

    def __init__(self, farm: FarmConfig, plan: WaterPlan, duration_s: float) -> None:
        self.plan = plan
        self.step_s = 60.0
        self._soil = DroughtScenario(storms=plan.storms)
        self.vessels = {s.id: s for s in farm.sensors if isinstance(s, WaterLevelSensor)}
        self.capacity = {
            v: s.vessel.volume_l(s.vessel.usable_height_mm) for v, s in self.vessels.items()
        }
        steps = int(duration_s // self.step_s) + 1
        self._litres: dict[str, list[float]] = {v: [] for v in self.vessels}
        self._totals = {v: dict.fromkeys(FLOWS, 0.0) for v in self.vessels}
        self._cumulative: dict[str, dict[str, list[float]]] = {
            v: {f: [] for f in FLOWS} for v in self.vessels
        }
        self._run(steps)

    def _run(self, steps: int) -> None:
        start = dict(self.plan.start_pct)
        level = {v: self.capacity[v] * start.get(v, 50.0) / 100 for v in self.vessels}
        gutter = dict.fromkeys(self.vessels, 0.0)
        for k in range(steps):
            self._record(level)
            self._advance(k * self.step_s, level, gutter)

    def _record(self, level: Mapping[str, float]) -> None:
        for v in self.vessels:
            self._litres[v].append(level[v])
            for flow in FLOWS:
                self._cumulative[v][flow].append(self._totals[v][flow])

    def _add(self, vessel: str, flow: str, litres: float) -> None:
        self._totals[vessel][flow] += litres

    def _advance(self, t: float, level: dict[str, float], gutter: dict[str, float]) -> None:
        dt = self.step_s
        catchments = dict(self.plan.catchment_m2)
        for v, area in catchments.items():
            gutter[v] += (self.rain_mm(t + dt) - self.rain_mm(t)) * area
            runoff = gutter[v] * (1 - math.exp(-dt / self.plan.gutter_s))
            gutter[v] -= runoff
            kept = min(runoff, self.capacity[v] - level[v])
            level[v] += kept
            self._add(v, "harvested", kept)
        for delivery in self.plan.deliveries:
            overlap = min(t + dt, delivery.start_s + delivery.duration_s) - max(t, delivery.start_s)
            if overlap > 0:
                v = delivery.vessel
                kept = min(
                    delivery.litres * overlap / delivery.duration_s, self.capacity[v] - level[v]
                )
                level[v] += kept
                self._add(v, "delivered", kept)
        self._use(t, level)

    def _use(self, t: float, level: dict[str, float]) -> None:
        dt = self.step_s
        herd = dict(self.plan.herd)
        for v, sensor in self.vessels.items():
            if sensor.role == "trough":
                head = herd.get(v, sensor.animals or 0)
                want = head * self.plan.litres_per_head_day * _drinking_share(t) * dt
                drunk = min(want, level[v])
                level[v] -= drunk
                self._add(v, "drunk", drunk)
        for v, litres_day in self.plan.other_use_l_day:
            hour = (t % DAY) / HOUR
            want = litres_day / (12 * HOUR) * dt if 6.0 <= hour < 18.0 else 0.0
            drawn = min(want, level[v])
            level[v] -= drawn
            self._add(v, "drawn", drawn)
        for v, sensor in self.vessels.items():
            if sensor.fed_from is None:
                continue
            source = sensor.fed_from
            capacity = self.capacity[v]
            opening = min(max((0.95 * capacity - level[v]) / (0.05 * capacity), 0.0), 1.0)
            flow = min(self.plan.valve_l_h / HOUR * dt * opening, level[source])
            level[v] += flow
            level[source] -= flow
            self._add(v, "transferred_in", flow)
            self._add(source, "transferred_out", flow)

    def rain_mm(self, t: float) -> float:
        """Cumulative rain up to simulated time ``t``."""
        return self._soil.rain_mm(t)

    def litres(self, vessel: str, t: float) -> float:
        """True litres in a vessel at ``t`` (linear between simulated minutes)."""
        series = self._litres[vessel]
        position = min(max(t / self.step_s, 0.0), len(series) - 1.0)
        k = int(position)
        if k + 1 >= len(series):
            return series[-1]
        return series[k] + (series[k + 1] - series[k]) * (position - k)

    def truth(self, vessel: str, flow: str, start_s: float, end_s: float) -> float:
        """Litres of ``flow`` (one of :data:`FLOWS`) of a vessel between two times (rounded
        to the simulated minute)."""
        series = self._cumulative[vessel][flow]

        def at(t: float) -> float:
            return series[min(max(round(t / self.step_s), 0), len(series) - 1)]

        return at(end_s) - at(start_s)

    def state_pct(self, sensor: SensorConfig, t: float) -> float:
        """The physical value a sensor sees: level % (with the plan's jitter), VWC %, or
        cumulative rain mm."""
        if isinstance(sensor, RainGauge):
            return self.rain_mm(t)
        if isinstance(sensor, SoilMoistureSensor):
            return self._soil.soil_pct(t, sensor.depth_cm)
        return 100.0 * self.level_mm(sensor, t) / sensor.vessel.usable_height_mm

    def level_mm(self, sensor: WaterLevelSensor, t: float) -> float:
        """The level a water-level sensor sees at ``t``, with the plan's jitter (up to
        ± ``jitter_pct`` of the height, the same at the same time), within the vessel."""
        height = sensor.vessel.usable_height_mm
        seed = zlib.crc32(f"{self.plan.seed}:{sensor.id}:{int(t)}".encode())
        jitter = random.Random(seed).uniform(-1.0, 1.0) * self.plan.jitter_pct / 100 * height
        return min(max(_level_mm(sensor, self.litres(sensor.id, t)) + jitter, 0.0), height)


def _level_mm(sensor: WaterLevelSensor, litres: float) -> float:
    """The level that holds ``litres`` (bisection on the vessel's geometry)."""
    low, high = 0.0, sensor.vessel.usable_height_mm
    for _ in range(60):
        middle = (low + high) / 2
        if sensor.vessel.volume_l(middle) < litres:
            low = middle
        else:
            high = middle
    return (low + high) / 2
