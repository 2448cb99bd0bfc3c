"""Tipping-bucket rain gauge pipeline: cumulative tip counters → rain (mm) since the previous
sample. Pure functions; the caller keeps the previous sample (the agent keeps it in the
outbox's sensor state, committed with the reading). Totals over days are summed where the
readings are stored (the dashboards' queries, the alerting service), not here.

Rules:
- the first sample after installation is the baseline (no rain);
- a counter that went down without a reboot rolled over at ``counter_modulo``;
- after a microcontroller reboot (its boot id changed) the counter restarted at zero, so the
  new counter value is the rain since the reboot (never negative, never counted twice);
- more tips than the bucket's switch can make (``min_tip_interval_ms``) are contact bounce, and
  more rain than ``max_rate_mm_h`` is not rain: such an interval is refused (0 mm, with a cause),
  and the baseline moves on so the burst is not counted later either;
- a value that is no counter (negative, fractional, beyond the modulo, not finite) is refused
  before it gets here (``Calibrator``) and never becomes the baseline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from farmwatch_shared.farm.model import RainGauge

RATE_WINDOW_MIN_S = 300.0
"""Rates are judged over at least this long: one tip in one second is not a cloudburst."""


@dataclass(frozen=True)
class CounterSample:
    """The gauge's cumulative tip counter at ``ts_ms``; ``boot`` identifies the counting run."""

    ts_ms: int
    counter: int
    boot: int | None = None


@dataclass(frozen=True)
class RainInterval:
    """Rain between two counter samples; ``refused`` says why the tips were not believed."""

    tips: int
    mm: float
    refused: str | None = None


def counter_tips(gauge: RainGauge, previous: CounterSample, sample: CounterSample) -> int:
    """Tips between two samples, handling rollover and a counter reset by a reboot.

    Without boot ids a counter that went down is taken as a rollover only when the previous
    value was near the top of the range, otherwise as a reset.
    """
    rebooted = (
        sample.boot is not None and previous.boot is not None and sample.boot != previous.boot
    )
    if rebooted:
        return sample.counter
    tips = sample.counter - previous.counter
    if tips >= 0:
        return tips
    if sample.boot is not None and previous.boot is not None:
        return tips + gauge.counter_modulo  # same run: the counter wrapped
    near_top = previous.counter >= 0.9 * gauge.counter_modulo
    return tips + gauge.counter_modulo if near_top else sample.counter


def max_tips(gauge: RainGauge, elapsed_ms: float) -> int:
    """The most tips believable in ``elapsed_ms``: the lower of the switch's debounce limit
    and the maximum plausible rain rate (judged over at least RATE_WINDOW_MIN_S), plus one."""
    by_rate = gauge.max_rate_mm_h * max(elapsed_ms / 1000.0, RATE_WINDOW_MIN_S) / 3600.0
    limit = math.floor(by_rate / gauge.bucket_mm) + 1
    if gauge.min_tip_interval_ms > 0:
        limit = min(limit, math.floor(elapsed_ms / gauge.min_tip_interval_ms) + 1)
    return limit


def rain_interval(
    gauge: RainGauge, previous: CounterSample | None, sample: CounterSample
) -> RainInterval:
    """Rain between ``previous`` and ``sample`` (None before the first sample: the baseline)."""
    if previous is None:
        return RainInterval(0, 0.0)
    tips = counter_tips(gauge, previous, sample)
    elapsed = sample.ts_ms - previous.ts_ms
    refused = None
    if elapsed <= 0 and tips > 0:
        refused = "rain_time_backwards"
    elif tips > max_tips(gauge, elapsed):
        refused = "rain_bounce" if _bounce_bound(gauge, elapsed, tips) else "rain_rate"
    mm = 0.0 if refused else round(tips * gauge.bucket_mm, 6)
    return RainInterval(tips, mm, refused)


def _bounce_bound(gauge: RainGauge, elapsed_ms: float, tips: int) -> bool:
    if gauge.min_tip_interval_ms <= 0:
        return False
    return tips > math.floor(elapsed_ms / gauge.min_tip_interval_ms) + 1
