"""*Resumen de agua / Water overview*: for operators, readable on a phone."""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.models import dashboard

from dashboards.farms import SensorView
from dashboards.panels import (
    FARM_FILTER,
    base_dashboard,
    days_left_overrides,
    grid,
    last_time_panel,
    level_overrides,
    name_overrides,
    query,
    stat_panel,
    steps,
    table_panel,
    timeseries_panel,
    with_overrides,
)
from farmwatch_shared.contract import SensorKind

UID = "farmwatch-water"
LEVELS = '"raw"."water_level"'


def build(sensors: Sequence[SensorView]) -> dashboard_builders.Dashboard:
    """The water overview dashboard."""
    levels = [s for s in sensors if s.kind is SensorKind.WATER_LEVEL]
    last_per_sensor = f'FROM {LEVELS} WHERE {FARM_FILTER} AND $timeFilter GROUP BY "farm", "sensor"'
    board = base_dashboard(
        UID,
        "Agua: bebederos y tanques / Water overview",
        "Nivel, litros y días de agua de cada bebedero y tanque; alertas activas. "
        "Level, litres and days of water left of each trough and tank; active alerts.",
        "now-24h",
    )
    board.with_panel(
        with_overrides(
            stat_panel(
                "Nivel / level (%)",
                "Última lectura; rojo bajo el umbral de alerta del archivo de la granja. "
                "Last reading; red below the farm file's alert threshold.",
                grid(0, 0, 12, 8),
            )
            .unit("percent")
            .min(0)
            .max(100)
            .thresholds(steps(("blue", None)))
            .with_target(query(f'SELECT last("value") {last_per_sensor}')),
            level_overrides(levels),
        )
    )
    board.with_panel(
        with_overrides(
            stat_panel(
                "Litros / litres",
                "Agua almacenada según la geometría del recipiente. "
                "Water held, from the vessel geometry.",
                grid(12, 0, 12, 8),
            )
            .unit("litre")
            .decimals(0)
            .thresholds(steps(("blue", None)))
            .with_target(query(f'SELECT last("volume_l") {last_per_sensor}')),
            name_overrides(levels),
        )
    )
    board.with_panel(
        with_overrides(
            stat_panel(
                "Días de agua / days of water left",
                "Litros actuales ÷ litros usados en las últimas 24 h; sólo recipientes que "
                "bajaron. Current litres ÷ litres used over the last 24 h; only vessels whose "
                "level fell.",
                grid(0, 8, 12, 8),
            )
            .time_from("24h")
            .decimals(1)
            .unit("d")
            .no_value("sin consumo / not falling")
            .thresholds(steps(("blue", None)))
            .with_target(
                query(
                    'SELECT "litres" / "used" AS "days" FROM (SELECT last("volume_l") AS '
                    '"litres", first("volume_l") - last("volume_l") AS "used" '
                    f"{last_per_sensor}) "
                    'WHERE "used" > 0 GROUP BY "farm", "sensor"'
                )
            ),
            days_left_overrides(levels),
        )
    )
    board.with_panel(
        with_overrides(
            last_time_panel(
                "Última actualización / last update",
                "Hora de la última lectura de cada sensor. Time of each sensor's last reading.",
                grid(12, 8, 12, 8),
            ).with_target(query(f'SELECT last("value") {last_per_sensor}')),
            name_overrides(levels),
        )
    )
    board.with_panel(
        with_overrides(
            timeseries_panel(
                "Nivel y umbral de alerta / level and alert threshold (%)",
                "Línea punteada: umbral de la regla de alerta. Dashed: the alert rule's threshold.",
                grid(0, 16, 24, 9),
            )
            .unit("percent")
            .min(0)
            .max(100)
            .thresholds(steps(("transparent", None)))
            .with_target(
                query(
                    f'SELECT mean("value") FROM {LEVELS} WHERE {FARM_FILTER} AND $timeFilter '
                    'GROUP BY time($__interval), "farm", "sensor" fill(none)'
                )
            ),
            level_overrides(levels),
        )
    )
    board.with_panel(
        table_panel(
            "Alertas activas / active alerts",
            "Reglas cuyo último evento del servicio de alertas es «firing». "
            "Rules whose latest event from the alerting service is firing.",
            grid(0, 25, 24, 7),
        )
        .time_from("30d")
        .with_target(
            query(
                # alert_event (collector/alerts/history.py): tags farm, rule, state
                'SELECT last("incident") AS "incident", "state", "from_state", "rule_type", '
                f'"value" FROM "raw"."alert_event" WHERE {FARM_FILTER} AND $timeFilter '
                'GROUP BY "farm", "rule"',
                alias=None,
            ).table()
        )
        .with_transformation(
            dashboard.DataTransformerConfig(
                id_val="filterByValue",
                options={
                    "type": "include",
                    "match": "any",
                    "filters": [
                        {
                            "fieldName": "state",
                            "config": {"id": "equal", "options": {"value": "firing"}},
                        }
                    ],
                },
            )
        )
    )
    return board
