"""*Balance de agua / water balance* panels: litres harvested, delivered, drunk and drawn per
farm, per local day and per month, from the ``water_balance`` points that
``farmwatch-water-balance`` writes (docs/web.md "Balance de agua"; transfers between a farm's
own vessels are fields of their own, so summing vessels counts no litre twice)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import timeseries
from grafana_foundation_sdk.models import common

from dashboards.panels import FARM_FILTER, grid, query, timeseries_panel
from farmwatch_shared.retention import DAY_OFFSET, RP_1D

FLOWS = (
    ("harvested_l", "cosechada / harvested"),
    ("delivered_l", "entregada / delivered"),
    ("drunk_l", "bebida / drunk"),
    ("drawn_l", "extraída / drawn"),
)
"""Field → series name (the column alias)."""
ALIAS = "$tag_farm: $col"


def balance_query(period: str) -> str:
    """Per farm and local day, the sum over its vessels of each flow of ``period`` points."""
    columns = ", ".join(f'sum("{field}") AS "{name}"' for field, name in FLOWS)
    return (
        f'SELECT {columns} FROM "{RP_1D}"."water_balance" WHERE {FARM_FILTER} AND '
        f'"period" = \'{period}\' AND $timeFilter GROUP BY time(1d, {DAY_OFFSET}), "farm" '
        "fill(none)"
    )


def panels(y: int) -> list[timeseries.Panel]:
    """The daily panel (the dashboard's range) and the monthly one (the last year), side by
    side at row ``y``."""
    daily = (
        timeseries_panel(
            "Balance de agua por día / water balance per day (litres)",
            "Litros cosechados por los tanques de lluvia, entregados (pipa, pozo), bebidos en "
            "los bebederos y extraídos de los tanques, por día local. Litres harvested by the "
            "rain tanks, delivered (truck, well), drunk at the troughs and drawn from the "
            "tanks, per local day.",
            grid(0, y, 12, 8),
        )
        .unit("litre")
        .decimals(0)
        .draw_style(common.GraphDrawStyle.BARS)
        .fill_opacity(80)
        .with_target(query(balance_query("day"), alias=ALIAS))
    )
    monthly = (
        timeseries_panel(
            "Balance de agua por mes / water balance per month (litres)",
            "Lo mismo por mes (la suma de sus días), el último año. The same per month (the "
            "sum of its days), over the last year.",
            grid(12, y, 12, 8),
        )
        .time_from("1y")
        .unit("litre")
        .decimals(0)
        .draw_style(common.GraphDrawStyle.BARS)
        .fill_opacity(80)
        .with_target(query(balance_query("month"), alias=ALIAS))
    )
    return [daily, monthly]
