"""Table interpolation shared by strapping tables (level → litres) and soil calibration tables
(raw → VWC). Pure functions; the vessel shapes are in ``farmwatch_shared.calibration.vessels``."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from itertools import pairwise


def check_table(points: Sequence[tuple[float, float]], *, monotonic_y: bool) -> None:
    """Raise ValueError unless ``points`` has at least two rows with strictly rising x (and,
    when ``monotonic_y``, never-falling y)."""
    if len(points) < 2:
        raise ValueError("a table needs at least two rows")
    for (x0, y0), (x1, y1) in pairwise(points):
        if not x1 > x0:
            raise ValueError(f"table x values must rise strictly ({x0} then {x1})")
        if monotonic_y and y1 < y0:
            raise ValueError(f"table y values must not fall ({y0} then {y1})")


def piecewise_linear(points: Sequence[tuple[float, float]], x: float) -> float:
    """Linear interpolation in a table of (x, y) rows sorted by x; beyond either end the nearest
    row's y is returned (tables are not extrapolated)."""
    xs = [p[0] for p in points]
    if x <= xs[0]:
        return points[0][1]
    if x >= xs[-1]:
        return points[-1][1]
    i = bisect_right(xs, x)
    (x0, y0), (x1, y1) = points[i - 1], points[i]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
