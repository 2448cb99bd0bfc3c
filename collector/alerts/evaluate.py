"""Each rule type's condition, evaluated on the stored samples of its farm."""

from __future__ import annotations

from collector.alerts.forecast import Forecast, forecast, min_trend_span_ms, slope_per_ms
from collector.alerts.state import Observation
from collector.alerts.store import AlertStore
from farmwatch_shared.farm.alert_rules import (
    AlertRule,
    DaysLeftBelow,
    LevelBelow,
    LevelFallingFaster,
    RainDeficit,
    Silent,
    SoilMoistureBelow,
)

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
DEFAULT_TREND_WINDOW_MS = DAY_MS
STALE_AFTER_MS = 6 * HOUR_MS
"""A latest value older than this says nothing about now (the silent rule covers that)."""


def lookback_ms(rule: AlertRule) -> int:
    """How much history a rule needs."""
    if isinstance(rule, DaysLeftBelow):
        return int(rule.trend_window_h * HOUR_MS)
    if isinstance(rule, LevelFallingFaster):
        return int(rule.window_min * 60_000)
    if isinstance(rule, RainDeficit):
        return rule.days * DAY_MS
    return DEFAULT_TREND_WINDOW_MS


def water_forecast(
    store: AlertStore, farm: str, sensor: str, now_ms: int, rule: DaysLeftBelow | None = None
) -> Forecast | None:
    """Days-left forecast of a water sensor (with a days-left rule's settings if given)."""
    window = lookback_ms(rule) if rule is not None else DEFAULT_TREND_WINDOW_MS
    samples = store.samples(farm, sensor, now_ms - window)
    herd = None
    if rule is not None and rule.herd_size is not None and rule.litres_per_animal_day:
        herd = rule.herd_size * rule.litres_per_animal_day
    return forecast(
        samples,
        refill_min_pct=rule.refill_min_pct if rule is not None else 1.0,
        herd_litres_per_day=herd,
        min_span_ms=min_trend_span_ms(window),
    )


def observe(
    store: AlertStore, farm: str, rule: AlertRule, now_ms: int, started_ms: int
) -> Observation:
    """The current observation for ``rule`` (``started_ms``: when watching began)."""
    if isinstance(rule, LevelBelow | SoilMoistureBelow):
        return _below(store, farm, rule, now_ms)
    if isinstance(rule, DaysLeftBelow):
        return _days_left(store, farm, rule, now_ms)
    if isinstance(rule, LevelFallingFaster):
        return _falling(store, farm, rule, now_ms)
    if isinstance(rule, RainDeficit):
        return _rain_deficit(store, farm, rule, now_ms)
    assert isinstance(rule, Silent)
    return _silent(store, farm, rule, now_ms, started_ms)


def _below(
    store: AlertStore, farm: str, rule: LevelBelow | SoilMoistureBelow, now_ms: int
) -> Observation:
    latest = store.latest(farm, rule.sensor)
    if latest is None or now_ms - latest[0] > STALE_AFTER_MS:
        return Observation(None, False)
    margin = 5.0 if isinstance(rule, LevelBelow) else 2.0
    recover = rule.recover_above_pct
    if recover is None:
        recover = min(rule.threshold_pct + margin, 100.0)
    value = latest[1]
    return Observation(value < rule.threshold_pct, value >= recover, value)


def _days_left(store: AlertStore, farm: str, rule: DaysLeftBelow, now_ms: int) -> Observation:
    result = water_forecast(store, farm, rule.sensor, now_ms, rule)
    if result is None:
        return Observation(None, False)
    if result.days_left is None:  # not falling
        return Observation(False, True, None)
    recover = rule.recover_above_days or rule.days * 1.25
    days = result.days_left
    return Observation(days < rule.days, days >= recover, days)


def _falling(store: AlertStore, farm: str, rule: LevelFallingFaster, now_ms: int) -> Observation:
    window = lookback_ms(rule)
    points = [(ts, pct) for ts, pct, _ in store.samples(farm, rule.sensor, now_ms - window)]
    if len(points) < 3 or points[-1][0] - points[0][0] < window // 2:
        return Observation(None, False)
    rate = -slope_per_ms(points) * HOUR_MS
    return Observation(rate > rule.rate_pct_per_h, rate <= rule.rate_pct_per_h / 2, rate)


def _rain_deficit(store: AlertStore, farm: str, rule: RainDeficit, now_ms: int) -> Observation:
    since = now_ms - rule.days * DAY_MS
    first = store.first_sample_ms(farm, rule.sensor)
    if first is None or first > since + HOUR_MS:
        return Observation(None, False)  # not watched long enough to judge
    total = sum(value for _, value, _ in store.samples(farm, rule.sensor, since))
    return Observation(total < rule.min_mm, total >= rule.min_mm, total)


def _silent(
    store: AlertStore, farm: str, rule: Silent, now_ms: int, started_ms: int
) -> Observation:
    if rule.sensor is not None:
        latest = store.latest(farm, rule.sensor)
        last = latest[0] if latest is not None else None
    else:
        seen = store.agent_last_seen(farm, rule.agent or "")
        last = seen[0] if seen is not None else None
    silent_ms = now_ms - (last if last is not None else started_ms)
    return Observation(
        silent_ms >= rule.after_s * 1000, silent_ms < rule.after_s * 1000, silent_ms / 1000
    )
