"""Every panel query of every generated dashboard, run against a real InfluxDB filled by the real
pipeline: emulated farms (pty) → edge agents → Mosquitto → collector → InfluxDB, with the
retention policies and continuous queries of ``farmwatch-influx-setup``."""

from __future__ import annotations

import json
import secrets
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from support.clocks import FrozenClock
from support.harness import (
    RunningAgent,
    collector_settings,
    farm_config,
    start_agent,
    start_collector,
)
from support.paths import COLLECTOR_USER, FARMS
from support.servers import Broker, Influx
from support.waiting import wait_for

from collector.influx_setup import RetentionPlan, apply
from collector.web.balance_export import export
from dashboards import balance as balance_panels
from dashboards.build import GENERATED
from dashboards.macros import TimeRange, expand, panel_range, series_name
from farmwatch_emulators.farm import FarmEmulator
from farmwatch_emulators.scenario import HOUR, DroughtScenario, Storm
from farmwatch_local.services import InfluxServer, MosquittoServer
from farmwatch_shared.contract import SensorKind
from farmwatch_shared.influx import InfluxV1Writer
from farmwatch_shared.lineprotocol import generic_line

STEP_MS = 5 * 60_000
STEPS = 37  # three hours of readings, every five minutes
START_SIM_S = 8 * HOUR  # cattle drinking: troughs fall
SCENARIO = DroughtScenario(storms=(Storm(9 * HOUR, 1 * HOUR, 12.0),))  # tank refills
LAST_YEAR_RAIN_MM = 7.5


@dataclass
class Filled:
    """The database after the run, and the wall-clock time the dashboards are viewed at."""

    influx: Influx
    now_ms: int


def sensors_of_kind(kind: SensorKind) -> set[str]:
    return {f"{f}/{s.id}" for f in FARMS for s in farm_config(f).sensors if s.kind == kind}


AGENTS = {f"{f}/{farm_config(f).agents[0].id}" for f in FARMS}
LEVELS = sensors_of_kind(SensorKind.WATER_LEVEL)
SOIL = sensors_of_kind(SensorKind.SOIL_MOISTURE)
RAIN = sensors_of_kind(SensorKind.RAIN)

TANKS = {name for name in LEVELS if "/tank" in name}  # the scenario's storm refills tanks
BALANCE = {f"{farm}: {name}" for farm in FARMS for _, name in balance_panels.FLOWS}

# (dashboard uid, panel title up to " / ", refId) → series each query must return; a pair is
# (at least, at most) where the answer depends on the scenario (a trough may not have risen).
EXPECTED: dict[tuple[str, str, str], set[str] | tuple[set[str], set[str]]] = {
    ("farmwatch-water", "Nivel", "A"): LEVELS,
    ("farmwatch-water", "Litros", "A"): LEVELS,
    # only vessels whose level fell over the last 24 h (the scenario's storm refills tanks)
    ("farmwatch-water", "Días de agua", "A"): (set(), LEVELS - TANKS),
    ("farmwatch-water", "Última actualización", "A"): LEVELS,
    ("farmwatch-water", "Nivel y umbral de alerta", "A"): LEVELS,
    ("farmwatch-water", "Alertas activas", "A"): {
        "oax-mixteca/trough-north-low",
        "oax-istmo/trough-long-low",
    },
    ("farmwatch-soil-rain", "Humedad del suelo", "A"): SOIL,
    ("farmwatch-soil-rain", "Lluvia diaria", "A"): RAIN,
    ("farmwatch-soil-rain", "Lluvia acumulada", "A"): RAIN,
    ("farmwatch-soil-rain", "Lluvia vs. recarga de tanques", "A"): RAIN,
    ("farmwatch-soil-rain", "Lluvia vs. recarga de tanques", "B"): (TANKS, LEVELS),
    ("farmwatch-soil-rain", "Consumo de agua por día", "A"): (set(), LEVELS),
    ("farmwatch-soil-rain", "Temporada anterior", "A"): RAIN,
    ("farmwatch-soil-rain", "Humedad del suelo, promedio diario", "A"): SOIL,
    ("farmwatch-fleet", "En línea", "A"): AGENTS,
    ("farmwatch-fleet", "Última lectura", "A"): AGENTS,
    ("farmwatch-fleet", "Cola pendiente", "A"): AGENTS,
    ("farmwatch-fleet", "Lecturas descartadas", "A"): {
        f"{a} descartadas / dropped" for a in AGENTS
    },
    ("farmwatch-fleet", "Lecturas descartadas", "B"): {
        f"{a} rechazadas / rejected" for a in AGENTS
    },
    ("farmwatch-fleet", "Reloj", "A"): AGENTS,
    ("farmwatch-fleet", "Versión", "A"): AGENTS,
    # no agent reports signal or battery yet
    ("farmwatch-fleet", "Señal y batería", "A"): set(),
    # water_balance points of today, written by farmwatch-water-balance from the readings
    ("farmwatch-soil-rain", "Balance de agua por día", "A"): BALANCE,
    ("farmwatch-soil-rain", "Balance de agua por mes", "A"): BALANCE,
}


def dashboards() -> dict[str, dict[str, Any]]:
    return {
        path.stem: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(GENERATED.glob("*.json"))
    }


def panel_targets() -> Iterator[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
    for board in dashboards().values():
        for panel in board["panels"]:
            for target in panel["targets"]:
                yield board, panel, target


def key(
    board: dict[str, Any], panel: dict[str, Any], target: dict[str, Any]
) -> tuple[str, str, str]:
    return (board["uid"], panel["title"].split(" / ")[0], target["refId"])


@pytest.fixture(scope="module")
def filled(
    influx_server: InfluxServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Filled]:
    """Three emulated farms send three hours of readings through the whole pipeline."""
    tmp = tmp_path_factory.mktemp("pipeline")
    passwords = {user: secrets.token_hex(12) for user in (COLLECTOR_USER, *FARMS)}
    server = MosquittoServer(data_dir=tmp / "mosquitto", users=passwords)
    server.start()
    broker = Broker(server, passwords)
    influx = Influx(influx_server, f"dash_{secrets.token_hex(4)}")
    writer = InfluxV1Writer(influx.url, influx.database)
    apply(
        lambda q: writer.query(q, method="POST"),
        RetentionPlan(database=influx.database, resample_every="1s"),
    )
    collector = start_collector(collector_settings(broker, influx))
    now_ms = int(time.time() * 1000)
    start_ms = now_ms - (STEPS - 1) * STEP_MS
    clocks = {farm: FrozenClock(start_ms) for farm in FARMS}
    # Sensors that a farm reads over a field bus are fed through the emulated microcontroller
    # here (the bus path itself is tested in test_edge_buses.py): only the data matters.
    wired = {
        farm: [s.model_copy(update={"source": None}) for s in farm_config(farm).sensors]
        for farm in FARMS
    }
    agents = [
        start_agent(broker, tmp, farm, clock=clocks[farm], sensors=wired[farm]) for farm in FARMS
    ]
    try:
        emulators = [
            FarmEmulator(
                a.mcu,
                wired[f],
                SCENARIO,
                start_s=START_SIM_S,
            )
            for f, a in zip(FARMS, agents, strict=True)
        ]
        for step in range(STEPS):
            for farm, emulator in zip(FARMS, emulators, strict=True):
                clocks[farm].now = start_ms + step * STEP_MS
                emulator.sim_s = START_SIM_S + step * STEP_MS / 1000
                emulator.sample_all()
            for agent, emulator in zip(agents, emulators, strict=True):
                last = (step + 1) * len(emulator.sensors) - 1

                def committed(a: RunningAgent = agent, n: int = last) -> bool:
                    return a.outbox.last_seq() == n

                wait_for(committed, what="readings in")
        for clock in clocks.values():
            clock.now = now_ms
        total = STEPS * sum(len(e.sensors) for e in emulators)
        wait_for(
            lambda: sum(influx.count(m) for m in ("water_level", "soil_moisture", "rain")) == total,
            what="every reading in InfluxDB",
        )
        wait_for(lambda: influx.query('SELECT * FROM "raw"."agent_status"'), what="status")
        # The daily roll-up of rain must match the raw total once the CQs have caught up.
        raw_rain = influx.query('SELECT sum("value") FROM "raw"."rain"')[0]["sum"]
        wait_for(
            lambda: any(
                abs(r["sum"] - raw_rain) < 1e-6
                for r in influx.query('SELECT sum("value") FROM "agg_1d"."rain"')
            ),
            what="continuous queries caught up",
        )
        # Last season's daily archive (the raw readings of a year ago have expired): written
        # straight into the daily aggregates, as the CQs would have a year ago.
        year_ago = TimeRange(now_ms, now_ms).shifted("1y").end_ms - 10 * 86_400_000
        writer_1d = InfluxV1Writer(influx.url, influx.database, retention_policy="agg_1d")
        writer_1d.write(
            [
                f"rain,agent=pi-1,farm={farm},sensor=rain,unit=mm value={LAST_YEAR_RAIN_MM},"
                f"samples=96i {year_ago}"
                for farm in FARMS
            ]
        )
        # Today's water balance, as farmwatch-water-balance.timer writes it every night
        today = datetime.fromtimestamp(now_ms / 1000, ZoneInfo("America/Mexico_City")).date()
        balance_writer = InfluxV1Writer(influx.url, influx.database, retention_policy="agg_1d")
        farms = [farm_config(farm) for farm in FARMS]
        assert export(balance_writer, farms, today, today, now_ms) > 0
        # Alert history as the alerting service exports it (collector/alerts/history.py: tags
        # farm, rule, state): that service is not part of this pipeline.
        InfluxV1Writer(influx.url, influx.database).write(
            [
                generic_line(
                    "alert_event",
                    {"farm": farm, "rule": rule, "state": state},
                    {"from_state": before, "incident": 1, "rule_type": "level_below"},
                    now_ms - offset_ms,
                )
                for farm, rule, before, state, offset_ms in (
                    ("oax-mixteca", "trough-north-low", "pending", "firing", 60_000),
                    ("oax-istmo", "trough-long-low", "pending", "firing", 120_000),
                    ("oax-istmo", "trough-long-low", "firing", "resolved", 60_000),
                )
            ]
        )
        yield Filled(influx, now_ms)
    finally:
        for agent in agents:
            agent.stop()
        collector.stop()
        server.stop()


def run_target(
    filled: Filled,
    board: dict[str, Any],
    panel: dict[str, Any],
    target: dict[str, Any],
    farms: list[str] | None,
) -> dict[str, list[dict[str, Any]]]:
    """Series name → rows, as Grafana would name them."""
    text = expand(
        target["query"],
        panel_range(board, panel, filled.now_ms),
        {"farm": farms},
        min_interval=panel.get("interval"),
    )
    assert "$" not in text.replace("$/", ""), f"unexpanded macro in {text}"
    rows: dict[str, list[dict[str, Any]]] = {}
    for series in raw_series(filled.influx, text):
        columns = series["columns"]
        tags = series.get("tags", {})
        value_columns = [c for c in columns if c != "time"]
        if target["resultFormat"] == "table":
            names = ["/".join(tags[k] for k in ("farm", "agent", "sensor", "rule") if k in tags)]
        else:
            names = [
                series_name(target.get("alias"), series["name"], tags, c) for c in value_columns
            ]
        for name in names:
            rows.setdefault(name, []).extend(
                dict(zip(columns, values, strict=True)) for values in series["values"]
            )
    return rows


def raw_series(influx: Influx, text: str) -> list[dict[str, Any]]:
    params = urllib.parse.urlencode({"db": influx.database, "q": text, "epoch": "ms"})
    with urllib.request.urlopen(f"{influx.url}/query?{params}", timeout=30) as response:
        answer = json.load(response)
    series: list[dict[str, Any]] = []
    for result in answer["results"]:
        assert "error" not in result, f"{text}: {result['error']}"
        series.extend(result.get("series", []))
    return series


def test_every_panel_query_has_an_expectation() -> None:
    keys = {key(*t) for t in panel_targets()}
    assert keys == set(EXPECTED)


def test_every_panel_query_returns_the_expected_series_for_all_farms(filled: Filled) -> None:
    for board, panel, target in panel_targets():
        rows = run_target(filled, board, panel, target, None)
        expected = EXPECTED[key(board, panel, target)]
        at_least, at_most = expected if isinstance(expected, tuple) else (expected, expected)
        got = set(rows)
        assert at_least <= got <= at_most, f"{key(board, panel, target)}: {sorted(got)}"
        for name, values in rows.items():
            assert values, f"{name}: no rows"


def test_farm_variable_restricts_every_query_to_the_chosen_farm(filled: Filled) -> None:
    for board, panel, target in panel_targets():
        rows = run_target(filled, board, panel, target, ["oax-istmo"])
        for name in rows:
            assert "oax-istmo" in name, f"{key(board, panel, target)} leaked {name}"
        expected = EXPECTED[key(board, panel, target)]
        at_least = expected[0] if isinstance(expected, tuple) else expected
        if any(name.startswith("oax-istmo/") for name in at_least):
            assert rows, f"{key(board, panel, target)}: nothing for oax-istmo"


def test_variable_query_lists_the_farms(filled: Filled) -> None:
    for board in dashboards().values():
        (variable,) = board["templating"]["list"]
        values = {
            row[1] for s in raw_series(filled.influx, variable["query"]) for row in s["values"]
        }
        assert values == set(FARMS)


def test_panel_values_match_the_readings(filled: Filled) -> None:
    boards = dashboards()
    water, soil_rain = boards["farmwatch-water"], boards["farmwatch-soil-rain"]

    def panel(board: dict[str, Any], title: str) -> dict[str, Any]:
        return next(p for p in board["panels"] if p["title"].split(" / ")[0] == title)

    level = panel(water, "Nivel")
    rows = run_target(filled, water, level, level["targets"][0], None)
    raw_last = filled.influx.query(
        'SELECT last("value") FROM "raw"."water_level" GROUP BY "farm", "sensor"'
    )
    assert {f"{r['farm']}/{r['sensor']}": r["last"] for r in raw_last} == {
        name: values[-1]["last"] for name, values in rows.items()
    }
    cumulative = panel(soil_rain, "Lluvia acumulada")
    rows = run_target(filled, soil_rain, cumulative, cumulative["targets"][0], None)
    raw_total = filled.influx.query('SELECT sum("value") FROM "raw"."rain" GROUP BY "farm"')
    for farm_total in raw_total:
        series = rows[f"{farm_total['farm']}/rain"]
        assert series[-1]["cumulative_sum"] == pytest.approx(farm_total["sum"])
        assert farm_total["sum"] > 0  # the storm fell inside the window
    previous = panel(soil_rain, "Temporada anterior")
    rows = run_target(filled, soil_rain, previous, previous["targets"][0], None)
    assert {name: values[-1]["cumulative_sum"] for name, values in rows.items()} == {
        name: LAST_YEAR_RAIN_MM for name in RAIN
    }
    days = panel(water, "Días de agua")
    rows = run_target(filled, water, days, days["targets"][0], None)
    assert rows, "some trough fell while the cattle drank"
    for name, values in rows.items():
        farm, sensor = name.split("/")
        (litres,) = filled.influx.query(
            'SELECT first("volume_l") AS "first", last("volume_l") AS "last" FROM '
            f'"raw"."water_level" WHERE "farm" = \'{farm}\' AND "sensor" = \'{sensor}\''
        )
        used = litres["first"] - litres["last"]
        assert used > 0
        assert values[-1]["days"] == pytest.approx(litres["last"] / used)
    alerts = panel(water, "Alertas activas")
    rows = run_target(filled, water, alerts, alerts["targets"][0], None)
    # the latest event of each rule, with its state for the panel's "firing" filter
    assert {name: values[-1]["state"] for name, values in rows.items()} == {
        "oax-mixteca/trough-north-low": "firing",
        "oax-istmo/trough-long-low": "resolved",
    }
    daily = panel(soil_rain, "Balance de agua por día")
    rows = run_target(filled, soil_rain, daily, daily["targets"][0], None)
    stored = filled.influx.query(
        'SELECT sum("drunk_l") AS "drunk", sum("harvested_l") AS "harvested" FROM '
        '"agg_1d"."water_balance" WHERE "period" = \'day\' GROUP BY "farm"'
    )
    for farm_total in stored:
        farm = farm_total["farm"]
        assert rows[f"{farm}: bebida / drunk"][-1]["bebida / drunk"] == pytest.approx(
            farm_total["drunk"]
        )
        assert rows[f"{farm}: cosechada / harvested"][-1]["cosechada / harvested"] == (
            pytest.approx(farm_total["harvested"])
        )
    assert {r["farm"] for r in stored} == set(FARMS)
    refill = panel(soil_rain, "Lluvia vs. recarga de tanques")
    target = next(t for t in refill["targets"] if t["refId"] == "B")
    rows = run_target(filled, soil_rain, refill, target, None)
    tanks = {n for n in rows if "/tank" in n}
    assert tanks == TANKS
    assert all(any(v["sum"] > 0 for v in rows[n]) for n in tanks)
