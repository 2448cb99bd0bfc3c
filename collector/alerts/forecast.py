"""Days of water left in a tank or trough, from its recent level trend.

The window of samples is cut into drawdown segments wherever the level rises by more than a
refill threshold (rain, a water truck, a float valve); each segment's use rate is its
least-squares slope, and the segments are averaged weighted by their duration. Refills thus
neither hide the use (as a first-to-last difference would) nor count as negative use. Where a
herd is configured, its demand (head × litres per head per day) is a floor on the use rate:
the forecast takes whichever empties the vessel sooner.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

DAY_MS = 86_400_000
MIN_TREND_SPAN_MS = 3_600_000
"""Less drawdown time than this in the window says nothing about the trend (a window shorter
than 2 h needs half its length: :func:`min_trend_span_ms`)."""


def min_trend_span_ms(window_ms: int) -> int:
    """Drawdown time a trend window of ``window_ms`` needs: 1 h, or half of a window shorter
    than 2 h (a window of 1 h or less could otherwise never give a forecast)."""
    return min(MIN_TREND_SPAN_MS, window_ms // 2)


@dataclass(frozen=True)
class Forecast:
    """How long the water lasts at the current rate of use."""

    days_left: float | None
    """None when the level is not falling (no end in sight)."""
    use_per_day: float
    unit: str
    """``L`` when volumes are known, else ``%`` (of the vessel's usable height)."""
    current: float
    basis: str
    """``trend``, ``herd`` or ``trend+herd``: what set the use rate."""


def slope_per_ms(points: Sequence[tuple[int, float]]) -> float:
    """Least-squares slope of (ts_ms, value) points, per millisecond."""
    t0 = points[0][0]
    n = len(points)
    mean_t = sum(t - t0 for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    num = sum((t - t0 - mean_t) * (v - mean_v) for t, v in points)
    den = sum((t - t0 - mean_t) ** 2 for t, _ in points)
    return num / den if den else 0.0


def use_rate_per_day(
    points: Sequence[tuple[int, float]],
    refill_min: float,
    min_span_ms: int = MIN_TREND_SPAN_MS,
) -> tuple[float, int] | None:
    """(use per day, drawdown time in ms) from (ts_ms, amount) points; None without a trend."""
    segments: list[list[tuple[int, float]]] = [[]]
    previous: float | None = None
    for ts, value in points:
        if previous is not None and value - previous >= refill_min:
            segments.append([])
        segments[-1].append((ts, value))
        previous = value
    weighted = 0.0
    span = 0
    for segment in segments:
        duration = segment[-1][0] - segment[0][0] if len(segment) >= 2 else 0
        if duration <= 0:
            continue
        weighted += -slope_per_ms(segment) * DAY_MS * duration
        span += duration
    if span < min_span_ms or span <= 0:
        return None
    return weighted / span, span


def forecast(
    samples: Sequence[tuple[int, float, float | None]],
    *,
    refill_min_pct: float = 1.0,
    herd_litres_per_day: float | None = None,
    min_span_ms: int = MIN_TREND_SPAN_MS,
) -> Forecast | None:
    """Forecast from (ts_ms, level %, volume L or None) samples, oldest first."""
    if not samples:
        return None
    by_volume = all(volume is not None for _, _, volume in samples)
    if by_volume:
        pct_per_litre = _pct_per_litre(samples)
        points = [(ts, float(volume or 0.0)) for ts, _, volume in samples]
        refill_min = refill_min_pct / pct_per_litre if pct_per_litre else refill_min_pct
        unit = "L"
    else:
        points = [(ts, pct) for ts, pct, _ in samples]
        refill_min = refill_min_pct
        unit = "%"
    current = points[-1][1]
    trend = use_rate_per_day(points, refill_min, min_span_ms)
    herd = herd_litres_per_day if by_volume else None
    if trend is None and herd is None:
        return None
    use = trend[0] if trend is not None else 0.0
    basis = "trend"
    if herd is not None and herd > use:
        use, basis = herd, "herd" if trend is None else "trend+herd"
    days = current / use if use > 0 else None
    return Forecast(days, use, unit, current, basis)


def _pct_per_litre(samples: Sequence[tuple[int, float, float | None]]) -> float:
    """Level points per litre, from the samples themselves (vessel shapes differ)."""
    pairs = [(pct, vol) for _, pct, vol in samples if vol]
    if not pairs:
        return 0.0
    pct, vol = max(pairs, key=lambda p: p[1])
    return pct / vol if vol else 0.0
