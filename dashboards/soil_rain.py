"""*Suelo y lluvia / Soil and rain*: for agronomists reviewing seasons.

Every panel reads the 15-minute or daily aggregates (``collector/influx_setup.py``), so a year
of data loads fast. Daily buckets start at local midnight (``GROUP BY time(1d, 6h)``).
"""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.models import common, dashboard

from dashboards import balance
from dashboards.farms import SensorView
from dashboards.panels import (
    FARM_FILTER,
    base_dashboard,
    grid,
    level_overrides,
    name_overrides,
    query,
    steps,
    timeseries_panel,
    with_overrides,
)
from farmwatch_shared.contract import SensorKind
from farmwatch_shared.retention import DAY_OFFSET, RP_1D, RP_15M

UID = "farmwatch-soil-rain"
DAILY = f'GROUP BY time(1d, {DAY_OFFSET}), "farm", "sensor"'
DAILY_RAIN = f'FROM "{RP_1D}"."rain" WHERE {FARM_FILTER} AND $timeFilter {DAILY} fill(0)'


def _litres_by_day(expression: str, alias_field: str, condition: str = "") -> str:
    """Daily sum of a per-15-minute change in stored litres (refill or use)."""
    where = f'"{alias_field}" > 0 AND ' if condition else ""
    return (
        f'SELECT sum("{alias_field}") FROM (SELECT {expression} AS "{alias_field}" '
        f'FROM "{RP_15M}"."water_level" WHERE {FARM_FILTER} AND $timeFilter '
        f'GROUP BY time(15m), "farm", "sensor") WHERE {where}$timeFilter {DAILY} fill(none)'
    )


def build(sensors: Sequence[SensorView]) -> dashboard_builders.Dashboard:
    """The soil and rain dashboard."""
    soil = [s for s in sensors if s.kind is SensorKind.SOIL_MOISTURE]
    rain = [s for s in sensors if s.kind is SensorKind.RAIN]
    levels = [s for s in sensors if s.kind is SensorKind.WATER_LEVEL]
    board = base_dashboard(
        UID,
        "Suelo y lluvia / Soil and rain",
        "Humedad del suelo por sensor y profundidad, lluvia diaria y acumulada, recarga y "
        "consumo de agua, comparación de temporadas. Soil moisture by sensor and depth, daily "
        "and cumulative rain, refill and water use, season over season.",
        "now-90d",
    )
    board.refresh("15m")
    board.with_panel(
        with_overrides(
            timeseries_panel(
                "Humedad del suelo / soil moisture (VWC %)",
                "Promedio de 15 min por sensor y profundidad; punteado: umbral de alerta. "
                "15-minute mean by sensor and depth; dashed: alert threshold.",
                grid(0, 0, 24, 9),
            )
            .interval("15m")
            .unit("percent")
            .min(0)
            .thresholds(steps(("transparent", None)))
            .with_target(
                query(
                    f'SELECT mean("value") FROM "{RP_15M}"."soil_moisture" WHERE {FARM_FILTER} '
                    'AND $timeFilter GROUP BY time($__interval), "farm", "sensor" fill(none)'
                )
            ),
            level_overrides(soil),
        )
    )
    board.with_panel(
        with_overrides(
            timeseries_panel(
                "Lluvia diaria / daily rain (mm)",
                "Suma por día local. Sum per local day.",
                grid(0, 9, 12, 8),
            )
            .unit("lengthmm")
            .draw_style(common.GraphDrawStyle.BARS)
            .fill_opacity(80)
            .with_target(query(f'SELECT sum("value") {DAILY_RAIN}')),
            name_overrides(rain),
        )
    )
    board.with_panel(
        with_overrides(
            timeseries_panel(
                "Lluvia acumulada / cumulative rain (mm)",
                "Desde el inicio del periodo elegido. Since the start of the chosen period.",
                grid(12, 9, 12, 8),
            )
            .unit("lengthmm")
            .with_target(query(f'SELECT cumulative_sum(sum("value")) {DAILY_RAIN}')),
            name_overrides(rain),
        )
    )
    board.with_panel(
        with_overrides(
            timeseries_panel(
                "Lluvia vs. recarga de tanques / rain vs. tank refill",
                "Barras: lluvia (mm); línea: litros que subió cada tanque por día. "
                "Bars: rain (mm); line: litres each tank rose per day.",
                grid(0, 17, 12, 8),
            )
            .unit("litre")
            .with_target(
                query(
                    _litres_by_day('non_negative_difference(mean("volume_l"))', "refill"),
                    ref_id="B",
                )
            )
            .with_target(query(f'SELECT sum("value") {DAILY_RAIN}', ref_id="A"))
            .override_by_regexp(
                ".*/rain$",
                [
                    dashboard.DynamicConfigValue(id_val="unit", value="lengthmm"),
                    dashboard.DynamicConfigValue(id_val="custom.drawStyle", value="bars"),
                    dashboard.DynamicConfigValue(id_val="custom.axisPlacement", value="right"),
                ],
            ),
            name_overrides([*levels, *rain]),
        )
    )
    board.with_panel(
        with_overrides(
            timeseries_panel(
                "Consumo de agua por día / water use per day (litres)",
                "Suma de las bajadas de nivel de cada recipiente. Sum of each vessel's drops.",
                grid(12, 17, 12, 8),
            )
            .unit("litre")
            .draw_style(common.GraphDrawStyle.BARS)
            .with_target(
                query(_litres_by_day('-1 * difference(mean("volume_l"))', "used", "positive"))
            ),
            name_overrides(levels),
        )
    )
    board.with_panel(
        with_overrides(
            timeseries_panel(
                "Temporada anterior / previous season: lluvia acumulada (mm)",
                "Mismas fechas hace un año, para comparar con la lluvia acumulada actual. "
                "Same dates one year earlier, to compare with this season's cumulative rain.",
                grid(0, 25, 12, 8),
            )
            .time_shift("1y")
            .unit("lengthmm")
            .with_target(query(f'SELECT cumulative_sum(sum("value")) {DAILY_RAIN}')),
            name_overrides(rain),
        )
    )
    board.with_panel(
        with_overrides(
            timeseries_panel(
                "Humedad del suelo, promedio diario / daily soil moisture (%)",
                "Para rangos largos (una o varias temporadas). For long ranges (seasons).",
                grid(12, 25, 12, 8),
            )
            .unit("percent")
            .min(0)
            .thresholds(steps(("transparent", None)))
            .with_target(
                query(
                    f'SELECT mean("value") FROM "{RP_1D}"."soil_moisture" WHERE {FARM_FILTER} '
                    f"AND $timeFilter {DAILY} fill(none)"
                )
            ),
            level_overrides(soil),
        )
    )
    for panel in balance.panels(33):
        board.with_panel(panel)
    return board
