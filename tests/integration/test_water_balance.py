"""Issue 12, acceptance 4: a week of the three shipped farms with known inflow and consumption
(``WaterScenario``), through the real pipeline (emulated microcontrollers on ptys → edge agents →
Mosquitto → collector → InfluxDB, the aggregates rolled up by ``farmwatch-influx-setup``'s
backfill), read back by ``balance_query`` and balanced by ``farm_balance``: the litres
harvested and used within 2 % of the truth; then ``farmwatch-water-balance`` writes it."""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
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
from support.paths import COLLECTOR_USER, FARM_FILES, FARMS
from support.servers import Broker, Influx
from support.waiting import wait_for
from support.water import END_S, RANGE_DAYS, WARM_UP_S, plans, truth

from collector.influx_setup import RetentionPlan, apply, backfill
from collector.web.balance import FarmBalance, farm_balance
from collector.web.balance_export import MEASUREMENT, day_balance, export, main
from collector.web.balance_query import load_series, statements
from farmwatch_emulators.scenario import WaterScenario, raw_for
from farmwatch_local.services import InfluxServer, MosquittoServer
from farmwatch_shared.farm.model import FarmConfig, RainGauge, SensorConfig, WaterLevelSensor
from farmwatch_shared.influx import InfluxV1Writer

ZONE = ZoneInfo("America/Mexico_City")
MINUTE_MS = 60_000
BATCH_MINUTES = 60
"""Each batch: an hour of samples kept by the microcontroller, sent with their age."""
RAIN_EVERY_MINUTES = 5


@dataclass
class Week:
    """The database after the run, and what really happened."""

    influx: Influx
    start_ms: int
    """Scenario time 0 (local midnight); the balance range starts a day later."""
    farms: dict[str, FarmConfig]
    scenarios: dict[str, WaterScenario]

    @property
    def range_ms(self) -> tuple[int, int]:
        return self.start_ms + int(WARM_UP_S * 1000), self.start_ms + int(END_S * 1000)

    def reader(self) -> InfluxV1Writer:
        return InfluxV1Writer(self.influx.url, self.influx.database)


def balance_sensors(farm: FarmConfig) -> list[SensorConfig]:
    """The water levels and rain gauges, all on the microcontroller (a bus sensor's path is
    tested in test_edge_buses.py: only its values matter here)."""
    return [
        s.model_copy(update={"source": None})
        for s in farm.sensors
        if isinstance(s, WaterLevelSensor | RainGauge)
    ]


def send_batch(
    agent: RunningAgent,
    sensors: list[SensorConfig],
    scenario: WaterScenario,
    first_minute: int,
    now_ms: int,
    start_ms: int,
) -> int:
    """An hour of samples, each with its age at ``now_ms``; how many were sent."""
    sent = 0
    for minute in range(first_minute, first_minute + BATCH_MINUTES):
        t_ms = start_ms + minute * MINUTE_MS
        for sensor in sensors:
            if isinstance(sensor, RainGauge) and minute % RAIN_EVERY_MINUTES:
                continue
            raw = raw_for(sensor, scenario.state_pct(sensor, minute * 60.0))
            agent.mcu.sample(sensor.channel, raw, age_ms=now_ms - t_ms)
            sent += 1
    return sent


@pytest.fixture(scope="module")
def week(influx_server: InfluxServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Week]:
    """Eight days (a warm-up day and the week) of 1-minute level readings of the three farms,
    ending a day ago, through the whole pipeline."""
    tmp = tmp_path_factory.mktemp("balance")
    passwords = {user: secrets.token_hex(12) for user in (COLLECTOR_USER, *FARMS)}
    server = MosquittoServer(data_dir=tmp / "mosquitto", users=passwords)
    server.start()
    broker = Broker(server, passwords)
    influx = Influx(influx_server, f"balance_{secrets.token_hex(4)}")
    writer = InfluxV1Writer(influx.url, influx.database)
    plan = RetentionPlan(database=influx.database)
    apply(lambda q: writer.query(q, method="POST"), plan)
    today = datetime.now(ZONE).date()
    start = today - timedelta(days=RANGE_DAYS + 2)
    start_ms = int(datetime(start.year, start.month, start.day, tzinfo=ZONE).timestamp() * 1000)
    farms = {f: farm_config(f) for f in FARMS}
    scenarios = {f: WaterScenario(farms[f], plans()[f], END_S + 3600) for f in FARMS}
    collector = start_collector(collector_settings(broker, influx))
    clocks = {f: FrozenClock(start_ms) for f in FARMS}
    sensors = {f: balance_sensors(farms[f]) for f in FARMS}
    agents = {
        f: start_agent(broker, tmp, f, clock=clocks[f], sensors=sensors[f], batch_max_readings=500)
        for f in FARMS
    }
    try:
        sent = dict.fromkeys(FARMS, 0)
        for first in range(0, int(END_S // 60), BATCH_MINUTES):
            now_ms = start_ms + (first + BATCH_MINUTES) * MINUTE_MS
            for farm in FARMS:
                clocks[farm].now = now_ms
                sent[farm] += send_batch(
                    agents[farm], sensors[farm], scenarios[farm], first, now_ms, start_ms
                )
            for farm in FARMS:

                def committed(a: RunningAgent = agents[farm], n: int = sent[farm]) -> bool:
                    return a.outbox.last_seq() == n - 1

                wait_for(committed, timeout_s=120, what=f"{farm}: readings committed")
        total = sum(sent.values())
        wait_for(
            lambda: influx.count("water_level") + influx.count("rain") == total,
            timeout_s=300,
            what="every reading in InfluxDB",
        )
        # what the nightly farmwatch-backfill.timer does for readings older than the CQs' reach
        backfill(
            lambda q: writer.query(q, method="POST"),
            plan,
            start_ms,
            start_ms + int(END_S * 1000),
        )
        yield Week(influx, start_ms, farms, scenarios)
    finally:
        for agent in agents.values():
            agent.stop()
        collector.stop()
        server.stop()


def week_balance(week: Week, farm_id: str) -> FarmBalance:
    start_ms, end_ms = week.range_ms
    farm = week.farms[farm_id]
    volumes, rain = load_series(week.reader(), farm, start_ms, end_ms)
    return farm_balance(farm, volumes, rain, start_ms, end_ms, "day")


@pytest.mark.parametrize("farm_id", FARMS)
def test_a_week_through_the_pipeline_balances_within_two_percent(week: Week, farm_id: str) -> None:
    balance = week_balance(week, farm_id)
    assert [p.complete for p in balance.periods] == [True] * RANGE_DAYS
    known = truth(week.scenarios[farm_id])
    harvested = math.fsum(p.totals.harvested_l for p in balance.periods)
    delivered = math.fsum(p.totals.delivered_l for p in balance.periods)
    used = math.fsum(p.totals.used_l for p in balance.periods)
    errors = {
        "harvested": (harvested - known.harvested_l) / max(known.harvested_l, 1.0),
        "inflow": (harvested + delivered - known.harvested_l - known.delivered_l)
        / (known.harvested_l + known.delivered_l),
        "used": (used - known.used_l) / known.used_l,
    }
    print(f"{farm_id}: {', '.join(f'{k} {v * 100:+.2f} %' for k, v in errors.items())}")
    if known.harvested_l:
        assert abs(errors["harvested"]) <= 0.02
    else:
        assert harvested == 0  # Istmo: rain, but no roof
    assert abs(errors["inflow"]) <= 0.02
    assert abs(errors["used"]) <= 0.02
    months = farm_balance(
        week.farms[farm_id],
        *load_series(week.reader(), week.farms[farm_id], *week.range_ms),
        *week.range_ms,
        "month",
    )
    assert math.fsum(p.totals.used_l for p in months.periods) == pytest.approx(used)


def test_short_ranges_read_the_raw_readings_in_the_aggregates_buckets(week: Week) -> None:
    farm = week.farms["chis-frailesca"]
    start_ms = week.range_ms[0] + 3 * 86_400_000
    end_ms = start_ms + 86_400_000
    short = statements(farm, start_ms, end_ms)
    assert [kind for kind, _ in short] == ["levels", "rain"]
    assert all('"raw".' in text for _, text in short)
    raw_volumes, raw_rain = load_series(week.reader(), farm, start_ms, end_ms)
    long_volumes, long_rain = load_series(week.reader(), farm, start_ms - 2 * 86_400_000, end_ms)
    assert [kind for kind, _ in statements(farm, start_ms - 2 * 86_400_000, end_ms)] == [
        "levels",
        "rain",
        "levels",
        "rain",
    ]
    for sensor, series in raw_volumes.items():
        assert len(series) == 2 * 96  # the warm-up day and the day
        aggregated = dict(long_volumes[sensor])
        for ts, litres in series:
            assert litres == pytest.approx(aggregated[ts], abs=0.01)
    assert sum(mm for _, mm in raw_rain) == pytest.approx(
        sum(mm for ts, mm in long_rain if ts >= start_ms - 86_400_000)
    )


def stored_points(week: Week) -> list[dict[str, object]]:
    return week.influx.query(
        f'SELECT * FROM "agg_1d"."{MEASUREMENT}" GROUP BY "farm", "vessel", "period"'
    )


def test_the_export_writes_each_day_once_and_again_the_same(week: Week) -> None:
    start_ms, end_ms = week.range_ms
    first = datetime.fromtimestamp(start_ms / 1000, ZONE).date()
    last = first + timedelta(days=RANGE_DAYS - 1)
    influx = InfluxV1Writer(week.influx.url, week.influx.database, retention_policy="agg_1d")
    farms = list(week.farms.values())
    written = export(influx, farms, first, last, now_ms=end_ms + 3 * 86_400_000)
    points = stored_points(week)
    days = [p for p in points if p["period"] == "day"]
    vessels = sum(1 for f in farms for s in f.sensors if isinstance(s, WaterLevelSensor))
    assert len(days) == vessels * RANGE_DAYS
    assert written == len(points)
    # again, over an overlapping range: the same points, not more
    assert export(influx, farms, first + timedelta(days=2), last, end_ms + 3 * 86_400_000) > 0
    assert stored_points(week) == points
    # each day balanced on its own window: what the page gets for that day alone
    trough = {p["time"]: p for p in days if p["vessel"] == "trough-long"}
    for offset in range(RANGE_DAYS):
        period = day_balance(
            week.reader(), week.farms["oax-istmo"], first + timedelta(offset), end_ms
        )
        point = trough[period.start_ms]
        flows = period.vessels["trough-long"]
        assert point["drunk_l"] == pytest.approx(flows.drunk_l)
        assert point["transferred_in_l"] == pytest.approx(flows.transferred_in_l)
        assert point["litres_per_animal_day"] == pytest.approx(flows.litres_per_animal_day)
        assert point["complete"] is True
    # the week's day points add up to the week balanced at once, within the 2 %
    week_used = math.fsum(p.totals.used_l for p in week_balance(week, "oax-istmo").periods)
    exported = math.fsum(p["used_l"] for p in days if p["farm"] == "oax-istmo")  # type: ignore[misc]
    assert exported == pytest.approx(week_used, rel=0.02)
    months = {p["time"] for p in points if p["period"] == "month"}
    assert months == {
        int(datetime(d.year, d.month, 1, tzinfo=ZONE).timestamp() * 1000) for d in (first, last)
    }


def test_the_command_checks_its_config_and_writes_the_chosen_days(
    week: Week, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FARMWATCH_COLLECTOR_FARM_DIR", str(FARM_FILES))
    monkeypatch.setenv("FARMWATCH_COLLECTOR_INFLUX_URL", week.influx.url)
    monkeypatch.setenv("FARMWATCH_COLLECTOR_INFLUX_DATABASE", week.influx.database)
    assert main(["--check-config"]) == 0
    out = capsys.readouterr().out
    assert (
        "oax-istmo: tank-steel (delivered_tank), trough-long (trough, ← tank-steel, 30 head)" in out
    )
    assert main(["--farm", "oax-nowhere", "--check-config"]) == 2
    assert "no farm oax-nowhere" in capsys.readouterr().err
    day = datetime.fromtimestamp(week.range_ms[0] / 1000, ZONE).date() + timedelta(days=1)
    args = ["--farm", "oax-mixteca", "--from", day.isoformat(), "--to", day.isoformat()]
    assert main(args) == 0
    # two vessels: the day's points and the month's (the sum of its days so far)
    assert f"oax-mixteca: {day}..{day}: 4 puntos / points" in capsys.readouterr().out
    monkeypatch.setenv("FARMWATCH_COLLECTOR_INFLUX_API", "v2")
    assert main(["--check-config"]) == 2
    assert "influx_api must be v1" in capsys.readouterr().err
