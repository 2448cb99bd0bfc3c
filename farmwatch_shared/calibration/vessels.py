"""Vessel geometry (level → litres) and level transducers (raw → level), as farm-file models.

Each shape knows its usable height and the volume held at a level; each transducer turns its raw
value into a level above the vessel bottom. Pure and frozen.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from farmwatch_shared.calibration.tables import check_table, piecewise_linear

Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class VerticalCylinder(_Frozen):
    """Round tank standing upright."""

    shape: Literal["vertical_cylinder"]
    diameter_mm: Positive
    """Inner diameter."""
    height_mm: Positive
    """Usable height: from the bottom to the highest water level (the overflow)."""

    @property
    def usable_height_mm(self) -> float:
        """The highest water level (the overflow), 100 %."""
        return self.height_mm

    def volume_l(self, level_mm: float) -> float:
        """Litres held at ``level_mm`` above the bottom."""
        radius_dm = self.diameter_mm / 200.0
        return math.pi * radius_dm**2 * (level_mm / 100.0)


class RectangularTrough(_Frozen):
    """Box-shaped trough or tank with vertical walls."""

    shape: Literal["rectangular"]
    length_mm: Positive
    """Inner length."""
    width_mm: Positive
    """Inner width."""
    height_mm: Positive
    """Usable height: from the bottom to the highest water level (the overflow)."""

    @property
    def usable_height_mm(self) -> float:
        """The highest water level (the overflow), 100 %."""
        return self.height_mm

    def volume_l(self, level_mm: float) -> float:
        """Litres held at ``level_mm`` above the bottom."""
        return (self.length_mm / 100.0) * (self.width_mm / 100.0) * (level_mm / 100.0)


class HorizontalCylinder(_Frozen):
    """Cylindrical tank lying on its side."""

    shape: Literal["horizontal_cylinder"]
    diameter_mm: Positive
    """Inner diameter (also the usable height)."""
    length_mm: Positive
    """Inner length."""

    @property
    def usable_height_mm(self) -> float:
        """The highest water level: the diameter, 100 %."""
        return self.diameter_mm

    def volume_l(self, level_mm: float) -> float:
        """Litres held at ``level_mm`` above the bottom (circular segment × length)."""
        r = self.diameter_mm / 200.0  # dm
        h = min(max(level_mm / 100.0, 0.0), 2 * r)
        segment = r * r * math.acos((r - h) / r) - (r - h) * math.sqrt(max(2 * r * h - h * h, 0.0))
        return segment * (self.length_mm / 100.0)


class StrappingTable(_Frozen):
    """Irregular tank or reservoir: a measured table of (level mm, litres) rows, interpolated
    linearly (e.g. from filling it with a metered pump, or from a survey of the pond)."""

    shape: Literal["strapping_table"]
    points: tuple[tuple[float, float], ...]
    """[level mm, litres] rows, at least two, levels strictly rising, litres never falling,
    from 0 or above; the last row's level is the usable height."""

    @field_validator("points")
    @classmethod
    def _rising(cls, points: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
        check_table(points, monotonic_y=True)
        if points[0][0] < 0 or points[0][1] < 0:
            raise ValueError("strapping table levels and litres start at 0 or above")
        return points

    @property
    def usable_height_mm(self) -> float:
        """The highest water level: the table's last row, 100 %."""
        return self.points[-1][0]

    def volume_l(self, level_mm: float) -> float:
        """Litres held at ``level_mm`` above the bottom (the table's first row is the floor)."""
        return piecewise_linear(self.points, level_mm)


Vessel = Annotated[
    VerticalCylinder | RectangularTrough | HorizontalCylinder | StrappingTable,
    Field(discriminator="shape"),
]


class UltrasonicTransducer(_Frozen):
    """Distance sensor above the water: raw value is the distance to the surface in mm."""

    type: Literal["ultrasonic"]
    mount_height_mm: Positive
    """Distance from the sensor face to the vessel bottom."""

    def level_mm(self, raw: float) -> float:
        """Level above the bottom: mount height minus the measured distance."""
        return self.mount_height_mm - raw


class PressureTransducer(_Frozen):
    """Submerged hydrostatic sensor: raw value is gauge pressure in kPa."""

    type: Literal["pressure"]
    offset_kpa: float = 0.0
    """Reading of the sensor out of the water (subtracted from the raw value)."""
    density_kg_m3: Positive = 1000.0
    """Density of the liquid."""
    sensor_elevation_mm: float = 0.0
    """Height of the sensor above the vessel bottom."""

    def level_mm(self, raw: float) -> float:
        """Level above the bottom: the water column over the sensor (ρ·g) plus its elevation."""
        return (raw - self.offset_kpa) * 1e6 / (self.density_kg_m3 * 9.80665) + (
            self.sensor_elevation_mm
        )


class DepthTransducer(_Frozen):
    """Submersible level sensor that reports the water depth above itself (a LoRaWAN
    submersible sensor such as the Milesight EM500-SWL): raw value is that depth in mm."""

    type: Literal["depth"]
    sensor_elevation_mm: float = 0.0
    """Height of the sensor above the vessel bottom."""

    def level_mm(self, raw: float) -> float:
        """Level above the bottom: the depth over the sensor plus its elevation."""
        return raw + self.sensor_elevation_mm


Transducer = Annotated[
    UltrasonicTransducer | PressureTransducer | DepthTransducer, Field(discriminator="type")
]
