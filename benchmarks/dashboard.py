"""Benchmark 7: a long-range dashboard panel on the aggregates against the same on raw data.

One year of 1-minute tank levels for three farms is written to the raw retention policy, the
aggregates are computed with the project's own roll-up statements (``collector.influx_setup``:
what its continuous queries and backfill run), then the year-long panel query is timed on
each resolution.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from benchmarks.common import FARMS, Stack
from collector.influx_setup import RetentionPlan, apply, backfill
from farmwatch_shared.clock import SystemClock
from farmwatch_shared.contract import Reading, SensorKind
from farmwatch_shared.influx import InfluxV1Writer
from farmwatch_shared.lineprotocol import reading_lines
from farmwatch_shared.retention import DAY_OFFSET, RAW_RP, RP_1D, RP_15M

YEAR_MIN = 365 * 24 * 60


@dataclass
class DashboardData:
    """A database holding a year of data and its aggregates."""

    writer: InfluxV1Writer
    points: int
    write_s: float
    rollup_s: float


def load_year(stack: Stack, batch_points: int = 5000) -> DashboardData:
    """Write a year of 1-minute tank levels for three farms and compute the aggregates."""
    database, writer = stack.new_database("dashboard")
    plan = RetentionPlan(database=database, raw_duration="INF")
    apply(lambda statement: writer.query(statement, method="POST"), plan)
    end_ms = SystemClock().now_ms() // 60_000 * 60_000
    start_ms = end_ms - YEAR_MIN * 60_000
    points = 0
    write_s = 0.0
    chunk_min = 5000
    for farm_no, farm in enumerate(FARMS):
        for first in range(0, YEAR_MIN, chunk_min):
            readings = []
            for minute in range(first, min(first + chunk_min, YEAR_MIN)):
                level = 50 + 40 * math.sin(minute / 43_200 + farm_no) + (minute % 7) * 0.1
                readings.append(
                    Reading(
                        seq=minute,
                        sensor="tank-main",
                        kind=SensorKind.WATER_LEVEL,
                        ts=start_ms + minute * 60_000,
                        value=round(level, 4),
                        unit="%",
                        raw=round(2300 - level * 20, 1),
                        volume_l=round(level * 251.3, 2),
                    )
                )
            lines = reading_lines(farm, "pi-1", readings)
            started = time.perf_counter()
            writer.write(lines)
            write_s += time.perf_counter() - started
            points += len(lines)
    started = time.perf_counter()
    backfill(lambda statement: writer.query(statement, method="POST"), plan, start_ms, end_ms)
    return DashboardData(writer, points, write_s, time.perf_counter() - started)


PANEL = (
    'SELECT mean("value") FROM "{rp}"."water_level" WHERE time >= now() - 365d '
    f"GROUP BY time(1d, {DAY_OFFSET}), farm fill(none)"
)


def query_time(data: DashboardData, rp: str, repeats: int) -> tuple[list[float], int]:
    """Seconds per run of the year-long daily-level panel on one resolution, and its rows."""
    times = []
    rows = 0
    for _ in range(repeats):
        started = time.perf_counter()
        answer = data.writer.query(PANEL.format(rp=rp))
        times.append(time.perf_counter() - started)
        results: Any = answer.get("results", [])
        rows = sum(len(s.get("values", [])) for r in results for s in r.get("series", []) or [])
    return times, rows


def panel_times(data: DashboardData, repeats: int) -> dict[str, tuple[list[float], int]]:
    """Query times on raw, 15-minute and daily data."""
    return {rp: query_time(data, rp, repeats) for rp in (RAW_RP, RP_15M, RP_1D)}
