"""The series the water balance needs, read from InfluxDB 1.x with InfluxQL.

``load_series(reader, farm, start_ms, end_ms) -> (volumes, rain)`` for
``balance.farm_balance``: every water_level sensor's litres and the farm's rain, in 15-minute
buckets, from a day before ``start_ms`` (the balance's warm-up) to ``end_ms``.

- Ranges longer than ``LONG_RANGE_MS`` (2 days) read the 15-minute aggregates
  (``agg_15m``, kept 5 years; ``farmwatch-influx-setup``), and the raw readings of their last
  ``RECENT_MS`` (6 h, what the continuous queries may not have rolled up yet), grouped into the
  same buckets; where both have a bucket, the raw one wins.
- Shorter ranges read only the raw readings (kept 90 days), grouped by 15 minutes in the query.
- One HTTP request per call, of at most four statements; answers are bounded by the range
  (96 buckets a day per sensor).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal, Protocol

from farmwatch_shared.farm.model import FarmConfig, WaterLevelSensor
from farmwatch_shared.influx import query_rows
from farmwatch_shared.retention import RAW_RP, RP_15M

DAY_MS = 86_400_000
LONG_RANGE_MS = 2 * DAY_MS
RECENT_MS = 6 * 3_600_000
WARM_UP_MS = DAY_MS
"""Series start this long before the balance range (see ``balance``)."""
Volumes = dict[str, list[tuple[int, float]]]
Rain = list[tuple[int, float]]


class InfluxReader(Protocol):
    """What is read through: ``farmwatch_shared.influx.InfluxV1Writer`` (a read-only user)."""

    def query(self, influxql: str, method: str = "GET") -> dict[str, object]:
        """Run InfluxQL and return the JSON answer."""
        ...


Kind = Literal["levels", "rain"]


def statements(
    farm: FarmConfig, start_ms: int, end_ms: int, *, aggregates: bool | None = None
) -> list[tuple[Kind, str]]:
    """The InfluxQL of one ``load_series`` call, in order: (the aggregates of levels and rain,)
    then the raw levels and rain."""
    lo = start_ms - WARM_UP_MS
    where = f"\"farm\" = '{farm.farm.id}'"  # a farm id is [a-z0-9_-]: nothing to escape
    aggregated: list[tuple[Kind, str]] = []
    raw_from = lo
    if aggregates or (aggregates is None and end_ms - start_ms > LONG_RANGE_MS):
        raw_from = max(lo, end_ms - RECENT_MS)
        span = f"time >= {lo}ms AND time < {end_ms}ms"
        aggregated = [
            (
                "levels",
                f'SELECT "volume_l" FROM "{RP_15M}"."water_level" WHERE {where} AND {span} '
                'GROUP BY "sensor"',
            ),
            (
                "rain",
                f'SELECT "value" FROM "{RP_15M}"."rain" WHERE {where} AND {span} GROUP BY "sensor"',
            ),
        ]
    span = f"time >= {raw_from}ms AND time < {end_ms}ms"
    return [
        *aggregated,
        (
            "levels",
            f'SELECT mean("volume_l") AS "volume_l" FROM "{RAW_RP}"."water_level" WHERE {where} '
            f'AND {span} GROUP BY time(15m), "sensor" fill(none)',
        ),
        (
            "rain",
            f'SELECT sum("value") AS "value" FROM "{RAW_RP}"."rain" WHERE {where} AND {span} '
            'GROUP BY time(15m), "sensor" fill(none)',
        ),
    ]


def load_series(
    reader: InfluxReader,
    farm: FarmConfig,
    start_ms: int,
    end_ms: int,
    *,
    aggregates: bool | None = None,
) -> tuple[Volumes, Rain]:
    """Litres per water_level sensor of the farm (every one, empty without readings) and the
    farm's rain (mm per 15 minutes, all gauges), ascending; raises ``InfluxQueryError`` when
    InfluxDB refuses a statement (a missing database reads as no data). ``aggregates`` True
    reads the aggregates (and the raw tail) whatever the range; None decides by its length."""
    planned = statements(farm, start_ms, end_ms, aggregates=aggregates)
    answer = reader.query(";".join(text for _, text in planned))
    results = answer.get("results")
    levels: dict[str, dict[int, float]] = {}
    rain: dict[tuple[str, int], float] = {}
    for index, result in enumerate(results if isinstance(results, list) else []):
        number = result.get("statement_id", index) if isinstance(result, dict) else index
        kind = planned[int(number)][0]
        # statements in order: the raw readings (last) overwrite the aggregates
        for ts, sensor, value in _points(query_rows({"results": [result]}), kind):
            if kind == "rain":
                rain[(sensor, ts)] = value
            else:
                levels.setdefault(sensor, {})[ts] = value
    known = sorted(s.id for s in farm.sensors if isinstance(s, WaterLevelSensor))
    volumes = {v: sorted(levels.get(v, {}).items()) for v in known}
    by_time: dict[int, float] = {}
    for (_, ts), mm in rain.items():
        by_time[ts] = by_time.get(ts, 0.0) + mm
    return volumes, sorted(by_time.items())


def _points(rows: Sequence[dict[str, Any]], kind: Kind) -> Iterator[tuple[int, str, float]]:
    field = "value" if kind == "rain" else "volume_l"
    for row in rows:
        ts, sensor, value = row.get("time"), row.get("sensor"), row.get(field)
        if isinstance(ts, int) and isinstance(sensor, str) and isinstance(value, int | float):
            yield ts, sensor, float(value)
