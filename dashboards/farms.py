"""What the dashboards take from the farm files: sensor labels and alert thresholds.

The alerting service evaluates the same ``[[alerts]]`` rules, so the lines drawn on panels are
the levels at which operators get an SMS.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from farmwatch_shared.contract import SensorKind
from farmwatch_shared.farm.alert_rules import DaysLeftBelow, LevelBelow, SoilMoistureBelow
from farmwatch_shared.farm.directory import load_farm_dir
from farmwatch_shared.farm.model import FarmConfig


@dataclass(frozen=True)
class SensorView:
    """One sensor as the dashboards show it."""

    farm: str
    farm_name: str
    sensor: str
    kind: SensorKind
    label: str
    depth_cm: int | None = None
    threshold_pct: float | None = None
    """Level or soil-moisture threshold of a ``*_below`` rule."""
    days_left: float | None = None
    """Threshold of a ``days_left_below`` rule."""

    @property
    def series(self) -> str:
        """Series name produced by the panels' alias ``$tag_farm/$tag_sensor``."""
        return f"{self.farm}/{self.sensor}"

    @property
    def display(self) -> str:
        """Short name for operators: farm name · sensor label (· depth)."""
        label = self.label or self.sensor
        if self.depth_cm is not None and f"{self.depth_cm} cm" not in label:
            label = f"{label} ({self.depth_cm} cm)"
        return f"{self.farm_name} · {label}"


def load_farms(directory: Path) -> list[FarmConfig]:
    """Every farm file of a farm directory, sorted by farm id."""
    return list(load_farm_dir(directory).values())


def sensor_views(farms: Iterable[FarmConfig]) -> list[SensorView]:
    """Sensors of all farms with their labels and alert thresholds."""
    views: list[SensorView] = []
    for farm in farms:
        thresholds: dict[str, float] = {}
        days: dict[str, float] = {}
        for rule in farm.alerts:
            if isinstance(rule, LevelBelow | SoilMoistureBelow):
                # the strictest rule wins when several watch one sensor
                thresholds[rule.sensor] = max(thresholds.get(rule.sensor, 0.0), rule.threshold_pct)
            elif isinstance(rule, DaysLeftBelow):
                days[rule.sensor] = max(days.get(rule.sensor, 0.0), rule.days)
        for sensor in farm.sensors:
            views.append(
                SensorView(
                    farm=farm.farm.id,
                    farm_name=farm.farm.name,
                    sensor=sensor.id,
                    kind=SensorKind(sensor.kind),
                    label=sensor.label,
                    depth_cm=getattr(sensor, "depth_cm", None),
                    threshold_pct=thresholds.get(sensor.id),
                    days_left=days.get(sensor.id),
                )
            )
    return views
