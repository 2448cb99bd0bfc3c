"""Days of water left, against known drawdown curves."""

from __future__ import annotations

import math
import random

import pytest

from collector.alerts.forecast import DAY_MS, forecast, min_trend_span_ms

HOUR_MS = 3_600_000
T0 = 1_795_000_000_000
CAPACITY_L = 20_000.0


def _sample(t_ms: int, litres: float) -> tuple[int, float, float]:
    return (t_ms, litres / CAPACITY_L * 100.0, litres)


def test_constant_use_gives_volume_over_rate() -> None:
    # 12 000 L at the start, 1 500 L/day for a day, sampled every 10 minutes
    samples = [_sample(T0 + i * 600_000, 12_000 - 1_500 * i / 144) for i in range(145)]
    result = forecast(samples)
    assert result is not None
    assert result.unit == "L"
    assert result.basis == "trend"
    assert result.use_per_day == pytest.approx(1_500, rel=1e-6)
    assert result.days_left == pytest.approx(10_500 / 1_500, rel=1e-6)  # 7 days


def test_use_with_refills_is_not_hidden_by_the_refills() -> None:
    # 1 000 L/day of use; a water truck brings 3 000 L every 2.5 days; 7 days of data
    litres = 4_000.0
    samples = []
    for i in range(7 * 24 + 1):
        t = T0 + i * HOUR_MS
        if i and i % 60 == 0:
            litres += 3_000
        samples.append(_sample(t, litres))
        litres -= 1_000 / 24
    result = forecast(samples)
    assert result is not None
    first_to_last = (samples[0][2] - samples[-1][2]) / 7  # what a naive estimate would say
    assert first_to_last == pytest.approx(1_000 - 2 * 3_000 / 7, rel=1e-6)
    assert result.use_per_day == pytest.approx(1_000, rel=1e-6)
    assert result.days_left == pytest.approx(samples[-1][2] / 1_000, rel=1e-6)


def test_noise_does_not_break_the_trend() -> None:
    rng = random.Random(4)
    samples = []
    for i in range(24 * 6 + 1):
        litres = 15_000 - 2_000 * i / 144 + rng.gauss(0, 20)  # ±0.1 % sensor noise
        samples.append(_sample(T0 + i * 600_000, litres))
    result = forecast(samples, refill_min_pct=1.0)
    assert result is not None
    assert result.days_left is not None
    assert result.use_per_day == pytest.approx(2_000, rel=0.02)
    assert result.days_left == pytest.approx(13_000 / 2_000, rel=0.03)


def test_herd_demand_is_a_floor_on_use() -> None:
    # trend says 500 L/day (e.g. rain keeps topping it up) but 30 head × 55 L need 1 650 L/day
    samples = [_sample(T0 + i * HOUR_MS, 9_000 - 500 * i / 24) for i in range(25)]
    result = forecast(samples, herd_litres_per_day=30 * 55)
    assert result is not None
    assert result.basis == "trend+herd"
    assert result.days_left == pytest.approx(8_500 / 1_650, rel=1e-6)


def test_herd_alone_when_there_is_no_trend_yet() -> None:
    result = forecast([_sample(T0, 6_600)], herd_litres_per_day=24 * 60)
    assert result is not None
    assert result.basis == "herd"
    assert result.days_left == pytest.approx(6_600 / 1_440)


def test_percent_only_and_not_falling() -> None:
    rising = [(T0 + i * HOUR_MS, 50.0 + i * 0.1, None) for i in range(10)]
    result = forecast(rising)
    assert result is not None
    assert result.unit == "%"
    assert result.days_left is None
    falling = [(T0 + i * HOUR_MS, 50.0 - i * 1.0, None) for i in range(10)]
    result = forecast(falling)
    assert result is not None
    assert result.unit == "%"
    assert result.days_left == pytest.approx(41.0 / 24.0)


def test_too_little_history_says_nothing() -> None:
    assert forecast([]) is None
    short = [_sample(T0 + i * 60_000, 1_000 - i) for i in range(30)]  # 29 minutes
    assert forecast(short) is None
    assert math.isclose(DAY_MS, 24 * HOUR_MS)


def test_a_window_shorter_than_two_hours_needs_half_of_it() -> None:
    assert min_trend_span_ms(24 * HOUR_MS) == HOUR_MS  # the default window: one hour
    assert min_trend_span_ms(2 * HOUR_MS) == HOUR_MS
    assert min_trend_span_ms(HOUR_MS // 2) == HOUR_MS // 4
    # 20 minutes of use at 10 L/min: nothing from a day's window, a trend from a half hour's
    # (which could never hold the hour a longer window needs)
    samples = [_sample(T0 + i * 60_000, 5_000 - 10 * i) for i in range(21)]
    assert forecast(samples, min_span_ms=min_trend_span_ms(24 * HOUR_MS)) is None
    result = forecast(samples, min_span_ms=min_trend_span_ms(HOUR_MS // 2))
    assert result is not None
    assert result.use_per_day == pytest.approx(10 * 60 * 24)
    assert result.days_left == pytest.approx(4_800 / (10 * 60 * 24))
