"""Generated dashboards: committed JSON up to date, schema, SDK round trip, thresholds from the
farm files, long-range panels on the aggregates."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from pydantic import ValidationError
from support.paths import FARM_FILES

from dashboards.build import GENERATED, LONG_RANGE, dashboards, differences, main, write
from dashboards.influxql import InfluxQLQuery, register
from dashboards.schema import Dashboard


def committed() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in GENERATED.glob("*.json")}


def test_regenerating_gives_the_committed_json_byte_for_byte(tmp_path: Path) -> None:
    write(tmp_path, FARM_FILES)
    fresh = {p.name: p.read_bytes() for p in tmp_path.glob("*.json")}
    assert fresh == {p.name: p.read_bytes() for p in GENERATED.glob("*.json")}
    assert sorted(fresh) == [
        "farmwatch-fleet.json",
        "farmwatch-soil-rain.json",
        "farmwatch-water.json",
    ]
    assert main(["--check", "--farms", str(FARM_FILES)]) == 0


def test_check_reports_stale_json_after_a_farm_file_changes(tmp_path: Path) -> None:
    farms = tmp_path / "farms"
    shutil.copytree(FARM_FILES, farms, ignore=shutil.ignore_patterns("*.md"))
    path = farms / "oax-mixteca.toml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("threshold_pct = 25", "threshold_pct = 30"),
        encoding="utf-8",
    )
    out = tmp_path / "out"
    write(out, FARM_FILES)  # generated from the shipped farm files
    assert differences(out, farms) == ["farmwatch-water.json"]
    assert main(["--check", "--out", str(out), "--farms", str(farms)]) == 1


def test_each_dashboard_matches_the_schema_of_generated_fields() -> None:
    for uid, model in committed().items():
        Dashboard.model_validate(model)
        assert model["uid"] == uid


def test_schema_rejects_what_the_generator_must_never_emit() -> None:
    model = committed()["farmwatch-water"]
    unfiltered = json.loads(json.dumps(model))
    unfiltered["panels"][0]["targets"][0]["query"] = 'SELECT last("value") FROM "water_level"'
    editable = {**model, "editable": True}
    unknown_field = {**model, "surprise": 1}
    for bad in (unfiltered, editable, unknown_field):
        with pytest.raises(ValidationError):
            Dashboard.model_validate(bad)


def test_each_dashboard_round_trips_through_the_sdk_parser() -> None:
    # imported after the dashboards package, which silences the SDK's v2 deprecation notice
    from grafana_foundation_sdk.models.dashboard import Dashboard as SdkDashboard

    register()
    for model in committed().values():
        parsed = SdkDashboard.from_json(model)
        targets = [t for p in parsed.panels or [] for t in getattr(p, "targets", None) or []]
        assert targets
        assert all(isinstance(t, InfluxQLQuery) for t in targets)
        assert json.loads(json.dumps(parsed, cls=JSONEncoder)) == model


def overrides(panel: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        o["matcher"]["options"]: {p["id"]: p["value"] for p in o["properties"]}
        for o in panel["fieldConfig"]["overrides"]
    }


def panel(uid: str, title: str) -> dict[str, Any]:
    board = committed()[uid]
    return next(p for p in board["panels"] if p["title"].split(" / ")[0] == title)


def test_thresholds_come_from_the_farm_files_alert_rules() -> None:
    level = overrides(panel("farmwatch-water", "Nivel"))
    # oax-mixteca: level_below trough-north 25 %; oax-istmo: trough-long 30 %
    assert level["oax-mixteca/trough-north"]["thresholds"]["steps"][1]["value"] == 25
    assert level["oax-istmo/trough-long"]["thresholds"]["steps"][1]["value"] == 30
    assert "thresholds" not in level["oax-mixteca/tank-main"]  # no level rule for the tank
    assert level["oax-mixteca/trough-north"]["displayName"].endswith("north paddock trough")
    days = overrides(panel("farmwatch-water", "Días de agua"))
    assert days["oax-mixteca/tank-main"]["thresholds"]["steps"][1]["value"] == 5
    assert days["oax-istmo/tank-steel"]["thresholds"]["steps"][1]["value"] == 4
    soil = overrides(panel("farmwatch-soil-rain", "Humedad del suelo"))
    assert soil["oax-mixteca/soil-20cm"]["thresholds"]["steps"][1]["value"] == 12
    assert soil["oax-istmo/soil-15cm"]["thresholds"]["steps"][1]["value"] == 10
    assert "thresholds" not in soil["oax-istmo/soil-40cm"]


def test_generation_reads_the_given_farm_files(tmp_path: Path) -> None:
    farms = tmp_path / "farms"
    shutil.copytree(FARM_FILES, farms, ignore=shutil.ignore_patterns("*.md"))
    path = farms / "oax-mixteca.toml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("threshold_pct = 25", "threshold_pct = 40"),
        encoding="utf-8",
    )
    water = dashboards(farms)["farmwatch-water"]
    level = next(p for p in water["panels"] if p["title"].startswith("Nivel /"))
    assert overrides(level)["oax-mixteca/trough-north"]["thresholds"]["steps"][1]["value"] == 40


SOURCE = re.compile(r'FROM "(\w+)"\.["/]')


def test_long_range_panels_read_only_the_aggregates() -> None:
    assert {"farmwatch-soil-rain"} == LONG_RANGE
    for uid in LONG_RANGE:
        for p in committed()[uid]["panels"]:
            for target in p["targets"]:
                sources = set(SOURCE.findall(target["query"]))
                assert sources, p["title"]
                assert sources <= {"agg_15m", "agg_1d"}, (p["title"], sources)
    # short-range dashboards read the raw readings
    for uid in set(committed()) - LONG_RANGE:
        for p in committed()[uid]["panels"]:
            for target in p["targets"]:
                assert set(SOURCE.findall(target["query"])) == {"raw"}


def test_one_dashboard_for_all_farms_selected_by_variable() -> None:
    for model in committed().values():
        (variable,) = model["templating"]["list"]
        assert (variable["name"], variable["multi"], variable["includeAll"]) == ("farm", True, True)
        assert model["editable"] is False
