"""Grafana macro expansion used to run panel queries outside Grafana."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dashboards.macros import (
    TimeRange,
    duration_ms,
    expand,
    panel_range,
    round_interval,
    series_name,
    variable_value,
)

DAY = 86_400_000


def ms(year: int, month: int, day: int, hour: int = 0) -> int:
    return int(datetime(year, month, day, hour, tzinfo=UTC).timestamp() * 1000)


def test_time_filter_interval_and_farm_are_expanded() -> None:
    now = ms(2026, 11, 29)
    text = expand(
        'SELECT mean("value") FROM "raw"."x" WHERE "farm" =~ /^$farm$/ AND $timeFilter '
        "GROUP BY time($__interval) -- $__interval_ms",
        TimeRange.relative(now, "now-24h"),
        {"farm": ["oax-mixteca", "oax-istmo"]},
    )
    assert text == (
        'SELECT mean("value") FROM "raw"."x" WHERE "farm" =~ /^(oax-mixteca|oax-istmo)$/ AND '
        f"time >= {now - DAY}ms and time <= {now}ms GROUP BY time(1m) -- 60000"
    )


def test_min_interval_wins_over_a_finer_automatic_interval() -> None:
    week = TimeRange.relative(ms(2026, 11, 29), "7d")
    assert "time(10m)" in expand("GROUP BY time($__interval)", week, {})
    assert "time(15m)" in expand("GROUP BY time($__interval)", week, {}, min_interval="15m")
    year = TimeRange.relative(ms(2026, 11, 29), "1y")
    assert "time(6h)" in expand("GROUP BY time($__interval)", year, {}, min_interval="15m")


@pytest.mark.parametrize(
    ("raw_ms", "nice"),
    [(1, "10ms"), (60_000, "1m"), (86_400, "1m"), (900_000, "15m"), (10 * DAY, "1w")],
)
def test_round_interval_like_grafana(raw_ms: int, nice: str) -> None:
    assert round_interval(raw_ms) == nice


def test_variable_values_are_regex_escaped_and_all_is_match_all() -> None:
    assert variable_value(None) == ".*"
    assert variable_value(["oax-mixteca"]) == "oax-mixteca"
    assert variable_value(["a.b", "c/d"]) == r"(a\.b|c\/d)"


def test_panel_overrides_and_calendar_year_shift() -> None:
    board = {"time": {"from": "now-90d", "to": "now"}}
    now = ms(2028, 2, 29, 12)
    assert panel_range(board, {}, now) == TimeRange(now - 90 * DAY, now)
    assert panel_range(board, {"timeFrom": "24h"}, now) == TimeRange(now - DAY, now)
    shifted = panel_range(board, {"timeShift": "1y"}, now)
    assert shifted.end_ms == ms(2027, 2, 28, 12)  # 29 February has no match a year earlier
    assert shifted.start_ms == ms(2026, 12, 1, 12)  # now − 90 d = 2027-12-01, a year earlier


def test_durations_and_aliases() -> None:
    assert duration_ms("15m") == 900_000
    assert duration_ms("1y") == 365 * DAY
    with pytest.raises(ValueError, match="not a Grafana duration"):
        duration_ms("soon")
    tags = {"farm": "oax-istmo", "sensor": "rain"}
    assert series_name("$tag_farm/$tag_sensor", "rain", tags, "sum") == "oax-istmo/rain"
    assert series_name("$tag_farm $col", "rain", tags, "sum") == "oax-istmo sum"
    assert series_name(None, "rain", tags, "sum") == "rain.sum {farm: oax-istmo, sensor: rain}"
