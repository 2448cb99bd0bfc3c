"""Retention policies and continuous queries on a real InfluxDB 1.x (``farmwatch-influx-setup``)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from support.servers import Influx
from support.waiting import wait_for

from collector.influx_setup import RetentionPlan, apply, main
from dashboards.build import GENERATED
from dashboards.macros import TimeRange, expand
from farmwatch_shared.influx import InfluxV1Writer

QUARTER_MS = 15 * 60_000


def setup(influx: Influx, plan: RetentionPlan) -> list[str]:
    writer = InfluxV1Writer(influx.url, influx.database)
    return apply(lambda q: writer.query(q, method="POST"), plan)


def policies(influx: Influx) -> dict[str, tuple[str, bool]]:
    rows = influx.query(f'SHOW RETENTION POLICIES ON "{influx.database}"')
    return {r["name"]: (r["duration"], r["default"]) for r in rows}


def continuous_queries(influx: Influx) -> dict[str, str]:
    """This test's database's CQs (the server is shared: other databases have none or others)."""
    answer = InfluxV1Writer(influx.url, influx.database).query("SHOW CONTINUOUS QUERIES")
    results = answer["results"]
    assert isinstance(results, list)
    found: dict[str, str] = {}
    for series in results[0].get("series", []):
        if series["name"] == influx.database:
            found.update({row[0]: row[1] for row in series.get("values", [])})
    return found


def test_setup_creates_policies_and_queries_and_is_idempotent(influx: Influx) -> None:
    plan = RetentionPlan(database=influx.database)
    setup(influx, plan)
    setup(influx, plan)
    found = policies(influx)
    assert found["raw"] == ("2160h0m0s", True)  # 90 days, the default: the collector writes here
    assert found["agg_15m"] == ("43800h0m0s", False)  # 5 years
    assert found["agg_1d"] == ("0s", False)  # forever
    assert sorted(continuous_queries(influx)) == sorted(plan.continuous_queries())
    # changing the plan updates the existing database in place
    setup(influx, RetentionPlan(database=influx.database, raw_duration="30d"))
    assert policies(influx)["raw"] == ("720h0m0s", True)
    assert len(continuous_queries(influx)) == 6


def test_continuous_queries_fill_the_15_minute_and_daily_aggregates(influx: Influx) -> None:
    setup(influx, RetentionPlan(database=influx.database, resample_every="1s"))
    now = int(time.time() * 1000)
    quarter = now - now % QUARTER_MS  # start of the current 15-minute bucket
    before = quarter - QUARTER_MS  # the bucket before
    tags = "agent=pi-1,farm=oax-mixteca"
    InfluxV1Writer(influx.url, influx.database).write(
        [
            f"water_level,{tags},sensor=tank-main,unit=% value=60.0,volume_l=600.0 {before + 1000}",
            f"water_level,{tags},sensor=tank-main,unit=% value=50.0,volume_l=500.0 {before + 2000}",
            f"water_level,{tags},sensor=tank-main,unit=% value=40.0,volume_l=400.0 {quarter + 1}",
            f"soil_moisture,{tags},sensor=soil-20cm,unit=% value=20.0 {before + 1000}",
            f"soil_moisture,{tags},sensor=soil-20cm,unit=% value=10.0 {before + 3000}",
            f"rain,{tags},sensor=rain,unit=mm value=0.4 {before + 1000}",
            f"rain,{tags},sensor=rain,unit=mm value=1.2 {before + 5000}",
            f"rain,{tags},sensor=rain,unit=mm value=2.0 {quarter + 1}",
        ]
    )

    def rows(query: str) -> list[dict[str, Any]]:
        return influx.query(query)

    levels = wait_for(
        lambda: (
            len(rows('SELECT * FROM "agg_15m"."water_level"')) == 2
            and rows('SELECT * FROM "agg_15m"."water_level"')
        ),
        what="15-minute water levels",
    )
    assert [
        (r["time"], r["value"], r["value_min"], r["value_max"], r["samples"]) for r in levels
    ] == [
        (before, 55.0, 50.0, 60.0, 2),
        (quarter, 40.0, 40.0, 40.0, 1),
    ]
    assert [r["volume_l"] for r in levels] == [550.0, 400.0]
    assert {(r["farm"], r["sensor"], r["unit"], r["agent"]) for r in levels} == {
        ("oax-mixteca", "tank-main", "%", "pi-1")
    }  # tags survive the roll-up
    soil = wait_for(lambda: rows('SELECT * FROM "agg_15m"."soil_moisture"'), what="soil")
    assert [(r["value"], r["value_min"], r["value_max"]) for r in soil] == [(15.0, 10.0, 20.0)]
    rain = wait_for(
        lambda: (
            len(rows('SELECT * FROM "agg_15m"."rain"')) == 2
            and rows('SELECT * FROM "agg_15m"."rain"')
        ),
        what="15-minute rain",
    )
    assert [(r["value"], r["samples"]) for r in rain] == [(pytest.approx(1.6), 2), (2.0, 1)]

    # daily buckets from the 15-minute ones (local midnight = 06:00 UTC)
    def daily_rain() -> float:
        return float(sum(r["value"] for r in rows('SELECT * FROM "agg_1d"."rain"')))

    wait_for(lambda: abs(daily_rain() - 3.6) < 1e-9, what="daily rain")
    for r in rows('SELECT * FROM "agg_1d"."rain"'):
        assert (r["time"] - 6 * 3_600_000) % 86_400_000 == 0
    daily_levels = wait_for(
        lambda: (
            sum(r["samples"] for r in rows('SELECT * FROM "agg_1d"."water_level"')) == 3
            and rows('SELECT * FROM "agg_1d"."water_level"')
        ),
        what="daily levels",
    )
    assert min(r["value_min"] for r in daily_levels) == 40.0
    assert max(r["value_max"] for r in daily_levels) == 60.0

    # the long-range dashboard's daily-rain panel reads exactly these aggregates
    board = json.loads((GENERATED / "farmwatch-soil-rain.json").read_text(encoding="utf-8"))
    panel = next(p for p in board["panels"] if p["title"].startswith("Lluvia diaria"))
    text = expand(
        panel["targets"][0]["query"], TimeRange.relative(now, "7d"), {"farm": ["oax-mixteca"]}
    )
    assert '"agg_1d"."rain"' in text
    answer = influx.query(text)
    assert sum(r["sum"] for r in answer) == pytest.approx(3.6)


def test_command_prints_or_applies_the_plan(
    influx: Influx, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FARMWATCH_COLLECTOR_INFLUX_URL", influx.url)
    monkeypatch.setenv("FARMWATCH_COLLECTOR_INFLUX_DATABASE", influx.database)
    assert main(["--print", "--raw", "45d"]) == 0
    printed = capsys.readouterr().out
    assert f'CREATE RETENTION POLICY "raw" ON "{influx.database}" DURATION 45d' in printed
    assert printed.count("CREATE CONTINUOUS QUERY") == 6
    databases = {r["name"] for r in influx.query("SHOW DATABASES")}
    assert influx.database not in databases  # printing touches nothing

    assert main(["--raw", "45d", "--agg-15m", "730d"]) == 0
    assert policies(influx)["raw"] == ("1080h0m0s", True)
    assert policies(influx)["agg_15m"] == ("17520h0m0s", False)


def test_command_reports_a_refused_statement(
    influx: Influx, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FARMWATCH_COLLECTOR_INFLUX_URL", influx.url)
    monkeypatch.setenv("FARMWATCH_COLLECTOR_INFLUX_DATABASE", influx.database)
    assert main(["--raw", "1m"]) == 1  # InfluxDB's minimum duration is one hour
    assert "refused" in capsys.readouterr().err


def test_backfill_rolls_up_readings_delivered_after_a_long_outage(
    influx: Influx, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup(influx, RetentionPlan(database=influx.database, resample_every="1s"))
    now = int(time.time() * 1000)
    old = now - 3 * 86_400_000  # an agent's outbox delivers readings three days late
    old_quarter = old - old % QUARTER_MS
    tags = "agent=pi-1,farm=oax-istmo,sensor=rain,unit=mm"
    InfluxV1Writer(influx.url, influx.database).write(
        [
            f"rain,{tags} value=0.6 {old_quarter + 1000}",
            f"rain,{tags} value=0.4 {old_quarter + 2000}",
            f"rain,{tags} value=1.0 {now}",
        ]
    )
    recent = now - now % QUARTER_MS
    wait_for(
        lambda: any(r["time"] == recent for r in influx.query('SELECT * FROM "agg_15m"."rain"')),
        what="the continuous query rolled up the recent reading",
    )
    # the continuous queries only revisit the last hours: the late readings are missing
    assert [r["time"] for r in influx.query('SELECT * FROM "agg_15m"."rain"')] == [recent]

    monkeypatch.setenv("FARMWATCH_COLLECTOR_INFLUX_URL", influx.url)
    monkeypatch.setenv("FARMWATCH_COLLECTOR_INFLUX_DATABASE", influx.database)
    assert main(["--backfill-days", "4"]) == 0
    quarters = {r["time"]: r["value"] for r in influx.query('SELECT * FROM "agg_15m"."rain"')}
    assert quarters[old_quarter] == pytest.approx(1.0)
    assert quarters[recent] == pytest.approx(1.0)
    daily = influx.query('SELECT sum("value") FROM "agg_1d"."rain"')
    wait_for(
        lambda: (
            influx.query('SELECT sum("value") FROM "agg_1d"."rain"')[0]["sum"] == pytest.approx(2.0)
        ),
        what="daily totals include the late readings",
    )
    assert daily
