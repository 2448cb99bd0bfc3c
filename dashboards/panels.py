"""Shared pieces of the farmwatch dashboards: the farm variable, queries, threshold overrides."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.models import common, dashboard

from dashboards.farms import SensorView
from dashboards.influxql import InfluxQL, datasource_ref

FARM_FILTER = '"farm" =~ /^$farm$/'
"""Every panel query restricts to the farms chosen in the ``farm`` variable."""
SERIES_ALIAS = "$tag_farm/$tag_sensor"
"""Series are named farm/sensor, which the overrides below match."""
AGENT_ALIAS = "$tag_farm/$tag_agent"
Overrides = list[tuple[str, list[dashboard.DynamicConfigValue]]]
P = TypeVar("P", stat.Panel, timeseries.Panel, table.Panel)


def farm_variable() -> dashboard_builders.QueryVariable:
    """``$farm``: one or several farms, chosen in the dashboard (not one copy per farm)."""
    return (
        dashboard_builders.QueryVariable("farm")
        .label("Granja / farm")
        .datasource(datasource_ref())
        .query('SHOW TAG VALUES WITH KEY = "farm"')
        .refresh(dashboard.VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(dashboard.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )


def query(text: str, ref_id: str = "A", alias: str | None = SERIES_ALIAS) -> InfluxQL:
    """A raw InfluxQL target."""
    target = InfluxQL(text).ref_id(ref_id)
    if alias is not None:
        target.alias(alias)
    return target


def steps(*pairs: tuple[str, float | None]) -> dashboard_builders.ThresholdsConfig:
    """Absolute thresholds from (colour, lower bound) pairs; the first bound is None."""
    return (
        dashboard_builders.ThresholdsConfig()
        .mode(dashboard.ThresholdsMode.ABSOLUTE)
        .steps([dashboard.Threshold(color=color, value=value) for color, value in pairs])
    )


def _threshold_value(low: float, high_color: str = "green") -> dict[str, object]:
    return {
        "mode": "absolute",
        "steps": [{"color": "red", "value": None}, {"color": high_color, "value": low}],
    }


def threshold_overrides(
    sensors: Iterable[SensorView], threshold: Callable[[SensorView], float | None]
) -> Overrides:
    """Per series: operator-friendly name and, where an alert rule gives one, its threshold
    (values below it are red; time series draw it as a dashed line)."""
    overrides = []
    for sensor in sensors:
        properties = [dashboard.DynamicConfigValue(id_val="displayName", value=sensor.display)]
        low = threshold(sensor)
        if low is not None:
            properties.append(
                dashboard.DynamicConfigValue(id_val="thresholds", value=_threshold_value(low))
            )
        overrides.append((sensor.series, properties))
    return overrides


def level_overrides(sensors: Iterable[SensorView]) -> Overrides:
    """Names and the level rule's threshold (%)."""
    return threshold_overrides(sensors, lambda s: s.threshold_pct)


def days_left_overrides(sensors: Iterable[SensorView]) -> Overrides:
    """Names and the ``days_left_below`` threshold of the sensor's rule."""
    return threshold_overrides(sensors, lambda s: s.days_left)


def name_overrides(sensors: Iterable[SensorView]) -> Overrides:
    """Per series: the operator-friendly name only."""
    return [
        (s.series, [dashboard.DynamicConfigValue(id_val="displayName", value=s.display)])
        for s in sensors
    ]


def with_overrides(panel: P, overrides: Overrides) -> P:
    """Apply name-matched overrides to a panel."""
    for name, properties in overrides:
        panel.override_by_name(name, properties)
    return panel


def grid(x: int, y: int, w: int, h: int) -> dashboard.GridPos:
    """Position on the 24-column grid."""
    return dashboard.GridPos(x=x, y=y, w=w, h=h)


def stat_panel(title: str, description: str, pos: dashboard.GridPos) -> stat.Panel:
    """A big-number panel showing the last value of each series (phone friendly)."""
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(datasource_ref())
        .grid_pos(pos)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .orientation(common.VizOrientation.HORIZONTAL)
    )


def last_time_panel(title: str, description: str, pos: dashboard.GridPos) -> stat.Panel:
    """A stat panel showing how long ago each series' newest point was (last week at most)."""
    return (
        stat_panel(title, description, pos)
        .time_from("7d")
        .unit("dateTimeFromNow")
        .thresholds(steps(("text", None)))
        .reduce_options(
            common_builders.ReduceDataOptions()
            .calcs(["lastNotNull"])
            .values(False)
            .fields("/^Time$/")
        )
    )


def timeseries_panel(title: str, description: str, pos: dashboard.GridPos) -> timeseries.Panel:
    """A time series panel; thresholds (from the alert rules) drawn as dashed lines."""
    return (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(datasource_ref())
        .grid_pos(pos)
        .span_nulls(True)
        .thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(
                common.GraphThresholdsStyleMode.DASHED
            )
        )
    )


def table_panel(title: str, description: str, pos: dashboard.GridPos) -> table.Panel:
    """A table panel."""
    return (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(datasource_ref())
        .grid_pos(pos)
    )


def base_dashboard(
    uid: str, title: str, description: str, time_from: str
) -> dashboard_builders.Dashboard:
    """A dashboard with the farm variable, Mexico's time zone and read-only for viewers."""
    return (
        dashboard_builders.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["farmwatch"])
        .timezone("America/Mexico_City")
        .time(time_from, "now")
        .refresh("1m")
        .readonly()
        .tooltip(dashboard.DashboardCursorSync.CROSSHAIR)
        .with_variable(farm_variable())
        .annotation(
            # Grafana's own annotations (e.g. "tank cleaned"), as a new dashboard has them
            dashboard_builders.AnnotationQuery()
            .name("Annotations & Alerts")
            .datasource(common.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
            .enable(True)
            .hide(True)
            .icon_color("rgba(0, 211, 255, 1)")
            .type("dashboard")
            .built_in(1)
        )
    )
