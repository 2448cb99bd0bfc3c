"""*Estado de los equipos / Fleet health*: agents online, last seen, backlog, clock, version, and
the agents' LoRaWAN sensors (last uplink, battery, signal, lost uplinks)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.models import dashboard

from dashboards.panels import (
    AGENT_ALIAS,
    FARM_FILTER,
    base_dashboard,
    grid,
    last_time_panel,
    query,
    stat_panel,
    table_panel,
    timeseries_panel,
)

UID = "farmwatch-fleet"
STATUS = '"raw"."agent_status"'
DEVICES = '"raw"."device_health"'
DEVICE_ALIAS = "$tag_farm/$tag_device"
READINGS = '"raw"./^(water_level|soil_moisture|rain)$/'
PER_AGENT = f'WHERE {FARM_FILTER} AND $timeFilter GROUP BY "farm", "agent"'
OVER_TIME = f'WHERE {FARM_FILTER} AND $timeFilter GROUP BY time($__interval), "farm", "agent"'
PER_DEVICE = f'WHERE {FARM_FILTER} AND $timeFilter GROUP BY "farm", "device"'
DEVICE_OVER_TIME = (
    f'WHERE {FARM_FILTER} AND $timeFilter GROUP BY time($__interval), "farm", "device" fill(none)'
)


def _bool_mapping(true_text: str, false_text: str) -> list[dashboard.ValueMapping]:
    return [
        dashboard.ValueMap(
            options={
                "true": dashboard.ValueMappingResult(text=true_text, color="green", index=0),
                "false": dashboard.ValueMappingResult(text=false_text, color="red", index=1),
            }
        )
    ]


def build() -> dashboard_builders.Dashboard:
    """The fleet health dashboard (per agent, not per sensor)."""
    board = base_dashboard(
        UID,
        "Estado de los equipos / Fleet health",
        "Agentes en línea, última lectura, cola pendiente, lecturas descartadas, reloj, "
        "versión, señal y batería, sensores LoRaWAN. Agents online, last reading, backlog, "
        "dropped readings, clock, version, signal and battery, LoRaWAN sensors.",
        "now-24h",
    )
    board.with_panel(
        stat_panel(
            "En línea / online",
            "Último estado publicado por el agente (o su última voluntad al desconectarse). "
            "Last status the agent published (or its last will when it dropped off).",
            grid(0, 0, 12, 7),
        )
        .time_from("7d")
        .mappings(_bool_mapping("en línea / online", "fuera de línea / offline"))
        .with_target(query(f'SELECT last("online") FROM {STATUS} {PER_AGENT}', alias=AGENT_ALIAS))
    )
    board.with_panel(
        last_time_panel(
            "Última lectura / last reading",
            "Hora de la lectura más reciente de cada agente. Time of each agent's newest reading.",
            grid(12, 0, 12, 7),
        ).with_target(
            query(
                f'SELECT last("seq") FROM (SELECT "seq" FROM {READINGS} WHERE {FARM_FILTER} '
                'AND $timeFilter GROUP BY "farm", "agent") GROUP BY "farm", "agent"',
                alias=AGENT_ALIAS,
            )
        )
    )
    board.with_panel(
        timeseries_panel(
            "Cola pendiente / outbox backlog",
            "Lecturas guardadas en el Pi que aún no llegan al servidor. "
            "Readings stored on the Pi not yet delivered.",
            grid(0, 7, 12, 8),
        )
        .decimals(0)
        .with_target(
            query(
                f'SELECT max("outbox_backlog") FROM {STATUS} {OVER_TIME} fill(none)',
                alias=AGENT_ALIAS,
            )
        )
    )
    board.with_panel(
        timeseries_panel(
            "Lecturas descartadas / dropped and rejected",
            "Totales desde el arranque: cola llena (descartadas) y líneas seriales inválidas. "
            "Totals since start: outbox full (dropped) and invalid serial lines (rejected).",
            grid(12, 7, 12, 8),
        )
        .decimals(0)
        .with_target(
            query(
                f'SELECT max("dropped_total") FROM {STATUS} {OVER_TIME} fill(none)',
                alias="$tag_farm/$tag_agent descartadas / dropped",
            )
        )
        .with_target(
            query(
                f'SELECT max("rejected_lines") FROM {STATUS} {OVER_TIME} fill(none)',
                ref_id="B",
                alias="$tag_farm/$tag_agent rechazadas / rejected",
            )
        )
    )
    board.with_panel(
        stat_panel(
            "Reloj / clock",
            "¿Está el reloj del Pi sincronizado (NTP)? Is the Pi's clock synchronised?",
            grid(0, 15, 8, 6),
        )
        .time_from("7d")
        .mappings(_bool_mapping("sincronizado / synced", "sin sincronizar / not synced"))
        .with_target(
            query(f'SELECT last("clock_synced") FROM {STATUS} {PER_AGENT}', alias=AGENT_ALIAS)
        )
    )
    board.with_panel(
        table_panel(
            "Versión / software version",
            "Versión del agente. Agent software version.",
            grid(8, 15, 8, 6),
        )
        .time_from("7d")
        .with_target(
            query(
                f'SELECT last("version") AS "version" FROM {STATUS} {PER_AGENT}', alias=None
            ).table()
        )
    )
    board.with_panel(
        timeseries_panel(
            "Señal y batería / signal and battery",
            "Sólo de los agentes que lo reportan (módem GSM, batería). Only where reported.",
            grid(16, 15, 8, 6),
        ).with_target(
            query(
                f'SELECT mean("signal_dbm") AS "signal_dbm", mean("battery_v") AS "battery_v" '
                f"FROM {STATUS} {OVER_TIME} fill(none)",
                alias="$tag_farm/$tag_agent $col",
            )
        )
    )
    _lorawan_panels(board)
    return board


def _lorawan_panels(board: dashboard_builders.Dashboard) -> None:
    """The LoRaWAN sensors' health, from the ``devices`` of their agents' statuses."""
    board.with_panel(
        stat_panel(
            "Último mensaje LoRaWAN / last LoRaWAN uplink",
            "Hace cuánto envió cada sensor LoRaWAN su último mensaje (hora del servidor de "
            "red), según el último estado del agente: llega al menos cada 6 h o con una "
            "novedad, así que puede tener hasta 6 h de retraso; las lecturas llegan con cada "
            "lote. How long ago each LoRaWAN sensor last uplinked (network server time), from "
            "the agent's last status: it comes at least every 6 h or with news, so it can be "
            "up to 6 h behind; the readings come with every batch.",
            grid(0, 21, 8, 8),
        )
        .time_from("7d")
        .unit("dateTimeFromNow")
        .with_target(
            query(f'SELECT last("last_uplink_ts") FROM {DEVICES} {PER_DEVICE}', alias=DEVICE_ALIAS)
        )
    )
    board.with_panel(
        timeseries_panel(
            "Batería y señal LoRaWAN / LoRaWAN battery and signal",
            "Batería (V o %), RSSI (dBm) y SNR (dB) del mejor gateway. Battery (V or %), RSSI "
            "(dBm) and SNR (dB) at the best gateway.",
            grid(8, 21, 8, 8),
        ).with_target(
            query(
                'SELECT last("battery_v") AS "battery_v", last("battery_pct") AS "battery_pct", '
                'last("rssi_dbm") AS "rssi_dbm", last("snr_db") AS "snr_db" '
                f"FROM {DEVICES} {DEVICE_OVER_TIME}",
                alias=f"{DEVICE_ALIAS} $col",
            )
        )
    )
    board.with_panel(
        timeseries_panel(
            "Mensajes LoRaWAN perdidos / LoRaWAN uplinks lost",
            "Mensajes que nunca llegaron (huecos del contador de tramas) y rechazados. Uplinks "
            "that never arrived (frame-counter gaps) and refused ones.",
            grid(16, 21, 8, 8),
        )
        .decimals(0)
        .with_target(
            query(
                f'SELECT max("lost_uplinks") FROM {DEVICES} {DEVICE_OVER_TIME}',
                alias=f"{DEVICE_ALIAS} perdidos / lost",
            )
        )
        .with_target(
            query(
                f'SELECT max("refused") FROM {DEVICES} {DEVICE_OVER_TIME}',
                ref_id="B",
                alias=f"{DEVICE_ALIAS} rechazados / refused",
            )
        )
    )
