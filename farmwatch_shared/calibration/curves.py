"""Calibration records with effective dates, and soil-moisture curves per soil type.

A probe recalibrated in May keeps its old coefficients for April's data: every record says from
when it applies, and the record in force at a reading's timestamp is the one used. Raw values are
kept with every reading, so a series can be recomputed when a record is added later
(``CalibrationBook.recompute``).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from farmwatch_shared.calibration.tables import check_table, piecewise_linear

_IDENT = r"^[a-z0-9][a-z0-9_-]{0,31}$"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PolynomialCurve(_Frozen):
    """c0 + c1·raw + c2·raw² + … (e.g. a manufacturer's or a lab fit)."""

    type: Literal["polynomial"]
    coefficients: tuple[float, ...] = Field(min_length=1)
    """c0, c1, c2, …"""

    def apply(self, raw: float) -> float:
        """Calibrated value for ``raw``."""
        result = 0.0
        for power, coefficient in enumerate(self.coefficients):
            result += coefficient * raw**power
        return result


class TableCurve(_Frozen):
    """Piecewise-linear table of (raw, value) rows, e.g. from gravimetric samples in the field.
    Raw values outside the table take the value of the nearest end row."""

    type: Literal["table"]
    points: tuple[tuple[float, float], ...]
    """[raw, value] rows, at least two, no raw value twice (sorted by raw when loaded)."""

    @field_validator("points")
    @classmethod
    def _rising(cls, points: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
        ordered = tuple(sorted(points))
        check_table(ordered, monotonic_y=False)
        return ordered

    def apply(self, raw: float) -> float:
        """Calibrated value for ``raw``."""
        return piecewise_linear(self.points, raw)


Curve = Annotated[PolynomialCurve | TableCurve, Field(discriminator="type")]


class SoilCurve(_Frozen):
    """A raw → volumetric water content (%) curve for one soil type, shared by probes in it."""

    id: Annotated[str, Field(pattern=_IDENT)]
    """Curve id, unique in the farm; calibration records name it in ``soil_curve``."""
    soil_type: str
    """Human description, e.g. "franco arcilloso / clay loam, Mixteca"."""
    curve: Curve
    """Raw probe value → volumetric water content (%)."""
    source: str = ""
    """Where the curve comes from (lab, manufacturer, field samples of <date>)."""


class CalibrationRecord(_Frozen):
    """From ``effective_from`` on, readings of ``sensor`` use this curve (or named soil curve)."""

    sensor: Annotated[str, Field(pattern=_IDENT)]
    """Id of a ``soil_moisture`` sensor."""
    effective_from: AwareDatetime
    """From when the record applies: a TOML date-time with its UTC offset."""
    curve: Curve | None = None
    """The curve itself (set this or ``soil_curve``)."""
    soil_curve: Annotated[str, Field(pattern=_IDENT)] | None = None
    """Id of a ``[[soil_curves]]`` entry (set this or ``curve``)."""
    by: str = ""
    """Who calibrated."""
    note: str = ""
    """Free text, e.g. how the samples were taken."""

    @model_validator(mode="after")
    def _one_curve(self) -> CalibrationRecord:
        if (self.curve is None) == (self.soil_curve is None):
            raise ValueError("a calibration record names exactly one of curve or soil_curve")
        return self

    @property
    def effective_ms(self) -> int:
        """``effective_from`` in milliseconds since the Unix epoch."""
        return int(self.effective_from.timestamp() * 1000)


class CalibrationBook:
    """All calibration records of a farm, answering "which curve applied at time t"."""

    def __init__(
        self, records: Iterable[CalibrationRecord], soil_curves: Iterable[SoilCurve] = ()
    ) -> None:
        curves = {c.id: c.curve for c in soil_curves}
        self._by_sensor: dict[str, list[tuple[int, PolynomialCurve | TableCurve]]] = {}
        for record in records:
            if record.curve is not None:
                curve = record.curve
            elif record.soil_curve in curves:
                curve = curves[record.soil_curve]
            else:
                raise ValueError(
                    f"calibration of {record.sensor}: no soil curve {record.soil_curve}"
                )
            self._by_sensor.setdefault(record.sensor, []).append((record.effective_ms, curve))
        for history in self._by_sensor.values():
            history.sort(key=lambda item: item[0])
            starts = [start for start, _ in history]
            if len(set(starts)) != len(starts):
                raise ValueError("two calibration records of one sensor share an effective date")

    def curve_at(self, sensor: str, ts_ms: int) -> PolynomialCurve | TableCurve | None:
        """The curve in force for ``sensor`` at ``ts_ms``; None before its first record."""
        history = self._by_sensor.get(sensor)
        if not history:
            return None
        i = bisect_right([start for start, _ in history], ts_ms)
        return history[i - 1][1] if i else None

    def recompute(
        self, sensor: str, raw_series: Sequence[tuple[int, float]]
    ) -> list[tuple[int, float | None]]:
        """(ts_ms, value) for kept (ts_ms, raw) pairs under the records now known; None where no
        record applies (the sensor's built-in coefficients then stand)."""
        result: list[tuple[int, float | None]] = []
        for ts, raw in raw_series:
            curve = self.curve_at(sensor, ts)
            result.append((ts, None if curve is None else curve.apply(raw)))
        return result
