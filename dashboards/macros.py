"""Grafana's InfluxQL macro expansion, for running panel queries outside Grafana (tests, checks).

Follows what Grafana's InfluxDB datasource does before sending a raw query: the panel's
relative time override and time shift, ``$timeFilter``, ``$__interval`` (range ÷ max data
points, rounded like Grafana, never below the panel's min interval), ``$__interval_ms`` and the
``$farm`` variable (multi-value with "All" = ``.*``); and the series alias patterns.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d|w|y)$")
# Grafana's rounding table: below the bound (ms) → use this interval.
_ROUNDING: tuple[tuple[int, str], ...] = (
    (15, "10ms"),
    (35, "20ms"),
    (75, "50ms"),
    (150, "100ms"),
    (350, "200ms"),
    (750, "500ms"),
    (1_500, "1s"),
    (3_500, "2s"),
    (7_500, "5s"),
    (12_500, "10s"),
    (17_500, "15s"),
    (25_000, "20s"),
    (45_000, "30s"),
    (90_000, "1m"),
    (210_000, "2m"),
    (450_000, "5m"),
    (750_000, "10m"),
    (1_050_000, "15m"),
    (1_500_000, "20m"),
    (2_700_000, "30m"),
    (5_400_000, "1h"),
    (9_000_000, "2h"),
    (16_200_000, "3h"),
    (32_400_000, "6h"),
    (86_400_000, "12h"),
    (604_800_000, "1d"),
    (1_814_400_000, "1w"),
    (3_628_800_000, "30d"),
)
_REGEX_SPECIALS = re.compile(r"([\\^$*+?.()|{}\[\]/])")


def duration_ms(text: str) -> int:
    """``"15m"`` → 900000 (``y`` = 365 days)."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a Grafana duration: {text!r}")
    count, unit = int(match.group(1)), match.group(2)
    return count * (365 * 86_400_000 if unit == "y" else _UNITS_MS[unit])


def round_interval(interval_ms: int) -> str:
    """Grafana's "nice" interval for a raw interval."""
    for bound, nice in _ROUNDING:
        if interval_ms < bound:
            return nice
    return "1y"


@dataclass(frozen=True)
class TimeRange:
    """Absolute range in epoch milliseconds."""

    start_ms: int
    end_ms: int

    @classmethod
    def relative(cls, now_ms: int, time_from: str) -> TimeRange:
        """``now-<time_from>`` to now (``time_from`` like ``24h``, or ``now-24h``)."""
        return cls(now_ms - duration_ms(time_from.removeprefix("now-")), now_ms)

    def shifted(self, shift: str) -> TimeRange:
        """Moved back by ``shift`` (calendar years for ``Ny``, as Grafana does)."""
        if shift.endswith("y"):
            years = int(shift[:-1])
            return TimeRange(_minus_years(self.start_ms, years), _minus_years(self.end_ms, years))
        delta = duration_ms(shift)
        return TimeRange(self.start_ms - delta, self.end_ms - delta)


def _minus_years(ms: int, years: int) -> int:
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    try:
        moved = moment.replace(year=moment.year - years)
    except ValueError:  # 29 February
        moved = moment.replace(year=moment.year - years, day=28)
    return int(moved.timestamp() * 1000) + (ms % 1000)


def panel_range(
    dashboard: Mapping[str, object], panel: Mapping[str, object], now_ms: int
) -> TimeRange:
    """The time range a panel queries: the dashboard's default range, or the panel's relative
    override (``timeFrom``), then its ``timeShift``."""
    time = dashboard.get("time")
    assert isinstance(time, Mapping)
    time_from = panel.get("timeFrom") or time["from"]
    assert isinstance(time_from, str)
    result = TimeRange.relative(now_ms, time_from)
    shift = panel.get("timeShift")
    if isinstance(shift, str) and shift:
        result = result.shifted(shift)
    return result


def regex_escape(value: str) -> str:
    """Escape a variable value for use inside an InfluxQL regex, as Grafana does."""
    return _REGEX_SPECIALS.sub(r"\\\1", value)


def variable_value(selected: Sequence[str] | None) -> str:
    """A multi-value variable in a regex: ``None`` = All (``.*``), else ``(a|b)``."""
    if selected is None:
        return ".*"
    escaped = [regex_escape(v) for v in selected]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def expand(
    query: str,
    time_range: TimeRange,
    variables: Mapping[str, Sequence[str] | None],
    *,
    min_interval: str | None = None,
    max_data_points: int = 1000,
) -> str:
    """The query Grafana sends for this range and these variable selections."""
    interval_ms = max(1, (time_range.end_ms - time_range.start_ms) // max_data_points)
    interval = round_interval(interval_ms)
    if min_interval is not None and duration_ms(min_interval) > duration_ms(interval):
        interval = min_interval
    text = query.replace(
        "$timeFilter", f"time >= {time_range.start_ms}ms and time <= {time_range.end_ms}ms"
    )
    text = text.replace("$__interval_ms", str(duration_ms(interval)))
    text = text.replace("$__interval", interval)
    for name in sorted(variables, key=len, reverse=True):
        value = variable_value(variables[name])
        text = text.replace(f"${{{name}}}", value).replace(f"${name}", value)
    return text


def series_name(alias: str | None, measurement: str, tags: Mapping[str, str], column: str) -> str:
    """A series' display name from the target's alias (``$tag_x``, ``$col``, ``$m``)."""
    if not alias:
        suffix = ", ".join(f"{k}: {v}" for k, v in sorted(tags.items()))
        return f"{measurement}.{column}" + (f" {{{suffix}}}" if suffix else "")
    name = re.sub(r"\$tag_(\w+)", lambda m: tags.get(m.group(1), m.group(0)), alias)
    return (
        name.replace("$col", column).replace("$measurement", measurement).replace("$m", measurement)
    )
