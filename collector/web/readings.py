"""What a farm page shows from InfluxDB, read in ONE request of a few InfluxQL statements.

Per page: the latest reading of each level and soil sensor, the first one in the trend window,
hourly means over 7 days (the 15-minute aggregates ``agg_15m`` up to the last hour, the raw
readings after it, which the continuous query has not rolled up yet), rain today (raw), the
daily rain sums of the 29 days before (``agg_1d``, whose days start at local midnight: see
``farmwatch_shared.retention.DAY_OFFSET``) and the last ``agent_status`` of each agent. A
statement that fails (a database without the aggregates) leaves its part empty and names it in
``FarmReadings.missing``; the rest of the page still shows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from farmwatch_shared.influx import InfluxQueryError, query_rows
from farmwatch_shared.retention import RP_1D, RP_15M

log = logging.getLogger(__name__)

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
HISTORY_MS = 7 * DAY_MS
TREND_MS = 6 * HOUR_MS
LATEST_WITHIN_MS = 30 * DAY_MS
"""Older readings are not looked for: the sensor shows as without a reading."""
MONTH_DAYS = 30
WEEK_DAYS = 7

Query = Callable[[str], dict[str, object]]
"""Runs InfluxQL (``InfluxV1Writer.query``) and returns the JSON answer."""


@dataclass(frozen=True)
class Latest:
    """A sensor's most recent reading."""

    ts_ms: int
    value: float
    volume_l: float | None
    agent: str


@dataclass(frozen=True)
class AgentState:
    """An agent's last ``agent_status`` point."""

    ts_ms: int
    online: bool
    outbox_backlog: int
    clock_synced: bool
    version: str


@dataclass(frozen=True)
class RainTotals:
    """Rain of the local day, the last 7 and the last 30 local days (today included)."""

    today_mm: float
    week_mm: float | None
    month_mm: float | None
    """None when the daily aggregates could not be read."""


@dataclass(frozen=True)
class FarmReadings:
    """One farm page's data."""

    latest: dict[str, Latest] = field(default_factory=dict)
    earlier: dict[str, tuple[int, float]] = field(default_factory=dict)
    """The first reading in the trend window (ts_ms, value) per sensor."""
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    """Hourly means (hour start ms, value) over 7 days per sensor, oldest first."""
    rain: dict[str, RainTotals] = field(default_factory=dict)
    agents: dict[str, AgentState] = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    """Parts that could not be read: ``history``, ``rain``..."""


@dataclass(frozen=True)
class Window:
    """The time ranges of one page, from its clock and the farm's time zone."""

    now_ms: int
    day_start_ms: int
    """Local midnight today."""
    month_start_ms: int
    """Local midnight 29 days ago (30 local days with today)."""
    week_start_ms: int
    """Local midnight 6 days ago."""
    history_start_ms: int
    raw_from_ms: int
    """History before this comes from the aggregates, after it from raw readings."""
    trend_start_ms: int


def page_window(now_ms: int, timezone: str) -> Window:
    """The windows of a page rendered at ``now_ms`` for a farm in ``timezone``."""
    zone = ZoneInfo(timezone)
    local = datetime.fromtimestamp(now_ms / 1000, zone)
    midnight = datetime(local.year, local.month, local.day, tzinfo=zone)

    def days_before(days: int) -> int:
        day = midnight.date() - timedelta(days=days)
        return int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp() * 1000)

    return Window(
        now_ms=now_ms,
        day_start_ms=int(midnight.timestamp() * 1000),
        month_start_ms=days_before(MONTH_DAYS - 1),
        week_start_ms=days_before(WEEK_DAYS - 1),
        history_start_ms=now_ms - HISTORY_MS,
        raw_from_ms=now_ms // HOUR_MS * HOUR_MS - HOUR_MS,
        trend_start_ms=now_ms - TREND_MS,
    )


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


LEVELS = '"water_level", "soil_moisture"'
AGG_LEVELS = f'"{RP_15M}"."water_level", "{RP_15M}"."soil_moisture"'
PARTS = ("latest", "trend", "history", "history", "rain", "rain", "agents")
"""What each statement of ``farm_statements`` reads (for ``missing``)."""
UNREADABLE = FarmReadings(missing=tuple(sorted(set(PARTS))))
"""What a page shows when InfluxDB does not answer."""


def farm_statements(farm_id: str, w: Window) -> list[str]:
    """The InfluxQL statements of one farm page, in the order ``parse_farm`` reads them."""
    farm = f'"farm" = {_quote(farm_id)}'
    return [
        f"SELECT * FROM {LEVELS} WHERE {farm} AND time > {w.now_ms - LATEST_WITHIN_MS}ms "
        f'AND time <= {w.now_ms}ms GROUP BY "sensor" ORDER BY time DESC LIMIT 1',
        f'SELECT first("value") AS "value" FROM {LEVELS} WHERE {farm} '
        f'AND time >= {w.trend_start_ms}ms AND time <= {w.now_ms}ms GROUP BY "sensor"',
        f'SELECT mean("value") AS "value" FROM {AGG_LEVELS} WHERE {farm} '
        f"AND time >= {w.history_start_ms}ms AND time < {w.raw_from_ms}ms "
        f'GROUP BY time(1h), "sensor" fill(none)',
        f'SELECT mean("value") AS "value" FROM {LEVELS} WHERE {farm} '
        f"AND time >= {w.raw_from_ms}ms AND time <= {w.now_ms}ms "
        f'GROUP BY time(1h), "sensor" fill(none)',
        f'SELECT sum("value") AS "value" FROM "rain" WHERE {farm} '
        f'AND time >= {w.day_start_ms}ms AND time <= {w.now_ms}ms GROUP BY "sensor"',
        f'SELECT "value" FROM "{RP_1D}"."rain" WHERE {farm} '
        f'AND time >= {w.month_start_ms}ms AND time < {w.day_start_ms}ms GROUP BY "sensor"',
        f'SELECT * FROM "agent_status" WHERE {farm} AND time <= {w.now_ms}ms '
        'GROUP BY "agent" ORDER BY time DESC LIMIT 1',
    ]


def statement_rows(answer: dict[str, object], count: int) -> list[list[dict[str, Any]] | None]:
    """The rows of each of ``count`` statements of one answer; None for one that failed."""
    out: list[list[dict[str, Any]] | None] = [[] for _ in range(count)]
    results = answer.get("results", [])
    for position, result in enumerate(results if isinstance(results, list) else []):
        index = result.get("statement_id", position) if isinstance(result, dict) else position
        if not isinstance(index, int) or not 0 <= index < count:
            continue
        try:
            out[index] = query_rows({"results": [result]})
        except InfluxQueryError as exc:
            log.warning("InfluxDB: %s", exc)
            out[index] = None
    return out


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _points(rows: Iterable[dict[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    series: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        value = _num(row.get("value"))
        if value is not None and isinstance(row.get("sensor"), str):
            series.setdefault(row["sensor"], []).append((int(row["time"]), value))
    return series


def _latest(rows: Iterable[dict[str, Any]]) -> dict[str, Latest]:
    latest: dict[str, Latest] = {}
    for row in rows:
        value = _num(row.get("value"))
        if value is None or not isinstance(row.get("sensor"), str):
            continue
        latest[row["sensor"]] = Latest(
            ts_ms=int(row["time"]),
            value=value,
            volume_l=_num(row.get("volume_l")),
            agent=str(row.get("agent") or ""),
        )
    return latest


def _agents(rows: Iterable[dict[str, Any]]) -> dict[str, AgentState]:
    return {
        str(row["agent"]): AgentState(
            ts_ms=int(row["time"]),
            online=row.get("online") is True,
            outbox_backlog=int(row.get("outbox_backlog") or 0),
            clock_synced=row.get("clock_synced") is True,
            version=str(row.get("version") or ""),
        )
        for row in rows
        if isinstance(row.get("agent"), str)
    }


def _rain(
    today: list[dict[str, Any]], days: list[dict[str, Any]] | None, w: Window
) -> dict[str, RainTotals]:
    totals: dict[str, RainTotals] = {}
    today_mm = {s: sum(v for _, v in p) for s, p in _points(today).items()}
    daily = _points(days or [])
    for sensor in sorted(set(today_mm) | set(daily)):
        now = today_mm.get(sensor, 0.0)
        if days is None:
            totals[sensor] = RainTotals(now, None, None)
            continue
        points = daily.get(sensor, [])
        week = now + sum(v for ts, v in points if ts >= w.week_start_ms)
        totals[sensor] = RainTotals(now, week, now + sum(v for _, v in points))
    return totals


def parse_farm(answer: dict[str, object], w: Window) -> FarmReadings:
    """A farm page's data from the answer to ``farm_statements``."""
    parts = statement_rows(answer, len(PARTS))
    latest, trend, agg, raw, rain_today, rain_days, agents = parts
    history: dict[str, list[tuple[int, float]]] = {}
    for rows in (agg, raw):
        for sensor, points in _points(rows or []).items():
            history.setdefault(sensor, []).extend(points)
    earlier = {s: p[0] for s, p in _points(trend or []).items() if p}
    missing = tuple(sorted({PARTS[i] for i, rows in enumerate(parts) if rows is None}))
    return FarmReadings(
        latest=_latest(latest or []),
        earlier=earlier,
        history={s: sorted(p) for s, p in history.items()},
        rain=_rain(rain_today or [], rain_days, w),
        agents=_agents(agents or []),
        missing=missing,
    )


class Readings:
    """Reads farm pages from InfluxDB (a read-only user is enough)."""

    def __init__(self, query: Query) -> None:
        self._query = query

    def farm(self, farm_id: str, w: Window) -> FarmReadings:
        """One farm page's data: one HTTP request. Raises RetryableWriteError when InfluxDB
        does not answer."""
        statements = farm_statements(farm_id, w)
        return parse_farm(self._query("; ".join(statements)), w)

    def agents(self, farm_ids: Sequence[str], now_ms: int) -> dict[str, dict[str, AgentState]]:
        """The last status of every agent of ``farm_ids`` (the overview): one statement."""
        if not farm_ids:
            return {}
        farms = " OR ".join(f'"farm" = {_quote(f)}' for f in farm_ids)
        statement = (
            f'SELECT * FROM "agent_status" WHERE ({farms}) AND time <= {now_ms}ms '
            'GROUP BY "farm", "agent" ORDER BY time DESC LIMIT 1'
        )
        rows = query_rows(self._query(statement))
        out: dict[str, dict[str, AgentState]] = {}
        for row in rows:
            out.setdefault(str(row.get("farm")), {}).update(_agents([row]))
        return out
