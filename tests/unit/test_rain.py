"""Rain pipeline: counters with rollover, reboot resets, bursts, through the one calibrator."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.harness import edge_committer

from edge.drivers.base import RawSample
from edge.drivers.poller import OutboxSink
from edge.outbox import Outbox
from farmwatch_shared.calibration.calibrate import Calibrated, Calibrator, SensorState
from farmwatch_shared.calibration.curves import CalibrationBook
from farmwatch_shared.calibration.rain import (
    CounterSample,
    RainInterval,
    counter_tips,
    rain_interval,
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


# (UTC time, counter, microcontroller boot id)
SEQUENCE = [
    ("2026-06-10T22:00:00", 65500, 7),  # baseline
    ("2026-06-10T22:05:00", 65530, 7),  # 30 tips = 6.0 mm
    ("2026-06-10T22:10:00", 14, 7),  # rollover: 6 + 14 = 20 tips = 4.0 mm
    ("2026-06-10T22:15:00", 3, 8),  # reboot, counter restarted: 3 tips = 0.6 mm
    ("2026-06-10T22:20:00", 203, 8),  # 200 tips = 40 mm in 5 min (480 mm/h): refused
    ("2026-06-10T22:25:00", 213, 8),  # 10 tips = 2.0 mm (the burst is not counted again)
    ("2026-06-11T05:58:00", 263, 8),  # 50 tips = 10.0 mm
    ("2026-06-11T06:03:00", 288, 8),  # 25 tips = 5.0 mm
    ("2026-06-11T06:04:00", 288, 8),  # nothing
    ("2026-06-11T06:04:01", 388, 8),  # 100 tips in 1 s: switch bounce, refused
    ("2026-06-11T06:09:01", 390, 8),  # 2 tips = 0.4 mm
]
SAMPLES = [CounterSample(ms(t), counter, boot) for t, counter, boot in SEQUENCE]
CALIBRATOR = Calibrator(CalibrationBook([]))


def intervals_of(samples: Sequence[CounterSample]) -> list[RainInterval]:
    """Rain between consecutive samples (the baseline moves on even past a refused one)."""
    return [rain_interval(GAUGE, previous, sample) for previous, sample in pairwise(samples)]


def calibrated_series(samples: Sequence[CounterSample]) -> list[Calibrated]:
    """The calibrator stepped through ``samples``, keeping the state as the committer does;
    the first sample is the baseline (left out)."""
    state = SensorState()
    results = []
    for sample in samples:
        result = CALIBRATOR.calibrate(
            GAUGE, float(sample.counter), sample.ts_ms, state, sample.boot
        )
        state = SensorState(sample.ts_ms, result.counter)
        results.append(result)
    assert results[0].value == 0.0  # the baseline
    return results[1:]


def test_interval_rain_with_rollover_reboot_rate_and_bounce_limits() -> None:
    intervals = intervals_of(SAMPLES)
    assert [i.mm for i in intervals] == [6.0, 4.0, 0.6, 0.0, 2.0, 10.0, 5.0, 0.0, 0.0, 0.4]
    assert [i.tips for i in intervals] == [30, 20, 3, 200, 10, 50, 25, 0, 100, 2]
    refused = [i.refused for i in intervals]
    assert refused == [None, None, None, "rain_rate", None, None, None, None, "rain_bounce", None]
    # the calibrator, the pipeline's one entry point, gives the same rain and causes
    calibrated = calibrated_series(SAMPLES)
    assert [c.value for c in calibrated] == [i.mm for i in intervals]
    assert [c.refused for c in calibrated] == refused
    assert [c.counter for c in calibrated] == SAMPLES[1:]  # the next baseline, always


def test_counter_without_boot_ids_uses_the_near_top_rule_like_the_committer() -> None:
    wrap = counter_tips(GAUGE, CounterSample(0, 65530), CounterSample(1, 4))
    reset = counter_tips(GAUGE, CounterSample(0, 1200), CounterSample(1, 4))
    assert (wrap, reset) == (10, 4)
    hour = 3_600_000  # long enough for any of these tips to be believable
    for previous, tips in ((65530, wrap), (1200, reset)):
        state = SensorState(0, CounterSample(0, previous))
        assert CALIBRATOR.calibrate(GAUGE, 4.0, hour, state).value == pytest.approx(tips * 0.2)
    # a single tip over a short interval is never refused as too intense
    one = CALIBRATOR.calibrate(GAUGE, 6.0, 1000, SensorState(0, CounterSample(0, 5)))
    assert (one.value, one.refused) == (0.2, None)
    first = CALIBRATOR.calibrate(GAUGE, 5.0, 0, SensorState())
    assert (first.value, first.counter) == (0.0, CounterSample(0, 5))  # first: the baseline


def test_bus_rain_gauge_commits_intervals_and_quarantines_a_burst(tmp_path: Path) -> None:
    problems = ProblemLog(logging.getLogger("test.rain"))
    outbox = Outbox(tmp_path / "outbox.db", 100)

    class Clock:
        def now_ms(self) -> int:
            return ms("2026-06-11T07:00:00")

        def monotonic(self) -> float:
            return 0.0

        def sleep(self, seconds: float) -> None:
            raise AssertionError("nothing waits here")

    sink = OutboxSink([GAUGE], edge_committer(outbox, Clock(), problems))
    for sample in SAMPLES[:6]:
        sink(RawSample("rain", float(sample.counter), sample.ts_ms, 0))
    # a bus counter has no boot id: the drop 14 → 3 at 22:15 reads as a reset (3 tips)
    assert [r.value for r in outbox.after(-1, 10)] == [0.0, 6.0, 4.0, 0.6, 2.0]
    assert problems.count("rain_rate") == 1
    assert [cause for cause, _ in outbox.quarantined()] == ["rain_rate"]
    # the gauge's kept state: its last sample, without a counting run (a bus has none)
    last = SAMPLES[5].ts_ms
    assert outbox.sensor_state("rain") == SensorState(last, CounterSample(last, 213))
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
    intervals = intervals_of(samples)
    for interval in intervals:
        assert interval.tips >= 0
        assert interval.mm >= 0
        if interval.refused:
            assert interval.mm == 0
        else:
            assert interval.mm == pytest.approx(interval.tips * 0.2)
    calibrated = calibrated_series(samples)
    assert [(c.value, c.refused) for c in calibrated] == [(i.mm, i.refused) for i in intervals]


def test_a_quarantined_counter_never_becomes_the_baseline(tmp_path: Path) -> None:
    """Issue 11, finding 11: a counter of −5 (or NaN, a fraction, beyond the modulo) is no
    counter value; it is quarantined and the next genuine sample is measured from the last
    genuine one (one tip: 0.2 mm)."""
    problems = ProblemLog(logging.getLogger("test.rain.baseline"))
    outbox = Outbox(tmp_path / "outbox.db", 100)

    class Clock:
        def now_ms(self) -> int:
            return ms("2026-06-11T07:00:00")

        def monotonic(self) -> float:
            return 0.0

        def sleep(self, seconds: float) -> None:
            raise AssertionError("nothing waits here")

    sink = OutboxSink([GAUGE], edge_committer(outbox, Clock(), problems))
    start = ms("2026-06-11T06:00:00")
    raws = [100.0, -5.0, 101.0, 70000.0, 101.5, float("nan"), float("inf"), 102.0]
    for minute, raw in enumerate(raws):
        sink(RawSample("rain", raw, start + minute * 60_000, 0))
    assert [r.value for r in outbox.after(-1, 10)] == [0.0, 0.2, 0.2]
    assert [cause for cause, _ in outbox.quarantined()] == [
        "rain_bad_counter",
        "rain_bad_counter",
        "rain_bad_counter",
        "raw_not_finite",
        "raw_not_finite",
    ]
    assert outbox.sensor_state("rain").counter == CounterSample(start + 7 * 60_000, 102)
    outbox.close()
