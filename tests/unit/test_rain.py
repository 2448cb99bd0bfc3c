"""Rain pipeline: counters with rollover, reboot resets, bursts and a local day boundary."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.drivers.base import RawSample
from edge.drivers.poller import OutboxSink
from edge.outbox import Outbox
from farmwatch_shared.calibration.calibrate import rain_between, rain_mm
from farmwatch_shared.calibration.rain import (
    CounterSample,
    counter_tips,
    daily_totals,
    rain_per_step,
    rain_rate_mm_h,
    rain_series,
)
from farmwatch_shared.farm.model import RainGauge
from farmwatch_shared.problems import ProblemLog

GAUGE = RainGauge.model_validate(
    {
        "id": "rain",
        "agent": "pi-1",
        "channel": "P1",
        "kind": "rain",
        "bucket_mm": 0.2,
        "counter_modulo": 65536,
        "max_rate_mm_h": 300,
        "min_tip_interval_ms": 50,
    }
)


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


# (UTC time, counter, microcontroller boot id); the farm is in America/Mexico_City (UTC−6),
# so local midnight between 10 and 11 June is 06:00 UTC on 11 June.
SEQUENCE = [
    ("2026-06-10T22:00:00", 65500, 7),  # baseline
    ("2026-06-10T22:05:00", 65530, 7),  # 30 tips = 6.0 mm
    ("2026-06-10T22:10:00", 14, 7),  # rollover: 6 + 14 = 20 tips = 4.0 mm
    ("2026-06-10T22:15:00", 3, 8),  # reboot, counter restarted: 3 tips = 0.6 mm
    ("2026-06-10T22:20:00", 203, 8),  # 200 tips = 40 mm in 5 min (480 mm/h): refused
    ("2026-06-10T22:25:00", 213, 8),  # 10 tips = 2.0 mm (the burst is not counted again)
    ("2026-06-11T05:58:00", 263, 8),  # 50 tips = 10.0 mm, 23:58 local on the 10th
    ("2026-06-11T06:03:00", 288, 8),  # 25 tips = 5.0 mm, 00:03 local on the 11th
    ("2026-06-11T06:04:00", 288, 8),  # nothing
    ("2026-06-11T06:04:01", 388, 8),  # 100 tips in 1 s: switch bounce, refused
    ("2026-06-11T06:09:01", 390, 8),  # 2 tips = 0.4 mm
]
SAMPLES = [CounterSample(ms(t), counter, boot) for t, counter, boot in SEQUENCE]


def test_interval_rain_with_rollover_reboot_rate_and_bounce_limits() -> None:
    intervals = rain_series(GAUGE, SAMPLES)
    assert [i.mm for i in intervals] == [6.0, 4.0, 0.6, 0.0, 2.0, 10.0, 5.0, 0.0, 0.0, 0.4]
    assert [i.tips for i in intervals] == [30, 20, 3, 200, 10, 50, 25, 0, 100, 2]
    refused = [i.refused for i in intervals]
    assert refused == [None, None, None, "rain_rate", None, None, None, None, "rain_bounce", None]
    assert intervals[0].rate_mm_h == pytest.approx(72.0)  # 6 mm in 5 min


def test_daily_totals_follow_the_farms_time_zone() -> None:
    intervals = rain_series(GAUGE, SAMPLES)
    assert daily_totals(intervals, "America/Mexico_City") == {
        date(2026, 6, 10): pytest.approx(22.6),
        date(2026, 6, 11): pytest.approx(5.4),
    }
    # in UTC the 05:58 interval would belong to the 11th: the zone matters
    assert daily_totals(intervals, "UTC") == {
        date(2026, 6, 10): pytest.approx(12.6),
        date(2026, 6, 11): pytest.approx(15.4),
    }


def test_rain_per_hour_and_rain_rate() -> None:
    intervals = rain_series(GAUGE, SAMPLES)
    assert rain_per_step(intervals, 3600) == {
        ms("2026-06-10T22:00:00"): pytest.approx(12.6),
        ms("2026-06-11T05:00:00"): pytest.approx(10.0),
        ms("2026-06-11T06:00:00"): pytest.approx(5.4),
    }
    assert rain_rate_mm_h(intervals, ms("2026-06-10T22:25:00"), 3600) == pytest.approx(12.6)
    # half of the 22:20–22:25 interval (2 mm) falls in the last 150 s: 1 mm in 2.5 min
    assert rain_rate_mm_h(intervals, ms("2026-06-10T22:25:00"), 150) == pytest.approx(24.0)


def test_counter_without_boot_ids_uses_the_near_top_rule_like_the_recorder() -> None:
    wrap = counter_tips(GAUGE, CounterSample(0, 65530), CounterSample(1, 4))
    reset = counter_tips(GAUGE, CounterSample(0, 1200), CounterSample(1, 4))
    assert (wrap, reset) == (10, 4)
    assert rain_mm(GAUGE, 4, 65530) == pytest.approx(wrap * 0.2)
    assert rain_mm(GAUGE, 4, 1200) == pytest.approx(reset * 0.2)
    # a single tip over a short interval is never refused as too intense
    one = rain_between(GAUGE, CounterSample(0, 5), CounterSample(1000, 6))
    assert (one.mm, one.refused) == (0.2, None)
    assert rain_between(GAUGE, None, CounterSample(0, 5)).mm == 0.0  # first: the baseline


def test_bus_rain_gauge_commits_intervals_and_quarantines_a_burst(tmp_path: Path) -> None:
    problems = ProblemLog(logging.getLogger("test.rain"))
    outbox = Outbox(tmp_path / "outbox.db", 100)

    class Clock:
        def now_ms(self) -> int:
            return ms("2026-06-11T07:00:00")

        def monotonic(self) -> float:
            return 0.0

    sink = OutboxSink([GAUGE], outbox, Clock(), problems)
    for sample in SAMPLES[:6]:
        sink(RawSample("rain", float(sample.counter), sample.ts_ms))
    # a bus counter has no boot id: the drop 14 → 3 at 22:15 reads as a reset (3 tips)
    assert [r.value for r in outbox.after(-1, 10)] == [0.0, 6.0, 4.0, 0.6, 2.0]
    assert problems.count("rain_rate") == 1
    assert [cause for cause, _ in outbox.quarantined()] == ["rain_rate"]
    outbox.close()


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=86_400_000),  # ms since the previous sample
            st.integers(min_value=0, max_value=65535),  # counter
            st.integers(min_value=0, max_value=3),  # boot id
        ),
        min_size=1,
        max_size=40,
    )
)
def test_rain_is_never_negative_and_refused_tips_never_count(
    steps: list[tuple[int, int, int]],
) -> None:
    ts = ms("2026-06-10T00:00:00")
    samples = []
    for gap, counter, boot in steps:
        ts += gap
        samples.append(CounterSample(ts, counter, boot))
    intervals = rain_series(GAUGE, samples)
    for interval in intervals:
        assert interval.tips >= 0
        assert interval.mm >= 0
        if interval.refused:
            assert interval.mm == 0
        else:
            assert interval.mm == pytest.approx(interval.tips * 0.2)
    total = sum(daily_totals(intervals, "America/Mexico_City").values())
    assert total == pytest.approx(sum(i.mm for i in intervals))
