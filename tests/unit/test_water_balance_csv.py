"""The water balance as CSV (collector/web/balance_csv.py) and as InfluxDB points
(collector/web/balance_export.py), from one balance."""

from __future__ import annotations

import csv
import io

import pytest
from support.paths import FARM_FILES

from collector.web.balance import (
    FarmBalance,
    FarmTotals,
    PeriodBalance,
    VesselBalance,
    combine,
)
from collector.web.balance_csv import CSV_BOM, balance_csv, header
from collector.web.balance_export import balance_lines
from farmwatch_shared.farm.model import load_farm_config

ISTMO = load_farm_config(FARM_FILES / "oax-istmo.toml")
DAY_MS = 86_400_000
MARCH_10 = 1_773_122_400_000  # 2026-03-10T00:00-06:00


def day(offset: int, *, complete: bool = True, trough_data: bool = True) -> PeriodBalance:
    tank = VesselBalance(
        "tank-steel", "delivered_tank", delivered_l=5000.4, transferred_out_l=1499.5,
        start_l=4000.0, end_l=7500.9, buckets=96,
    )  # fmt: skip
    trough = (
        VesselBalance(
            "trough-long",
            "trough",
            transferred_in_l=1499.5,
            drunk_l=1500.49,
            litres_per_animal_day=50.016 if complete else None,
            start_l=1995.0,
            end_l=1994.0,
            buckets=96,
        )
        if trough_data
        else VesselBalance("trough-long", "trough")
    )
    vessels = {"tank-steel": tank, "trough-long": trough}
    totals = FarmTotals(0.0, 5000.4, 0.0, trough.drunk_l, 5995.0, 9494.9)
    start = MARCH_10 + offset * DAY_MS
    label = f"2026-03-{10 + offset:02d}"
    return PeriodBalance(start, start + DAY_MS, label, complete, vessels, totals)


def two_days() -> FarmBalance:
    return FarmBalance(
        farm="oax-istmo",
        period="day",
        start_ms=MARCH_10,
        end_ms=MARCH_10 + 2 * DAY_MS,
        periods=[day(0), day(1, complete=False, trough_data=False)],
        autonomy_days=4.2,
        use_per_day_l=1500.0,
        stored_l=9494.9,
        thresholds_l={"tank-steel": 101.8, "trough-long": 21.0},
    )


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_has_a_row_per_day_and_vessel_and_the_farm_total_in_spanish() -> None:
    text = balance_csv(two_days(), ISTMO, "es")
    assert text.startswith("fecha,periodo_completo,recipiente,nombre,rol,cosechada_l,")
    assert text.endswith("\r\n")
    assert "\r\n" in text.splitlines(keepends=True)[0]
    table = rows(text)
    assert [(r["fecha"], r["recipiente"]) for r in table] == [
        ("2026-03-10", "tank-steel"),
        ("2026-03-10", "trough-long"),
        ("2026-03-10", "total"),
        ("2026-03-11", "tank-steel"),
        ("2026-03-11", "trough-long"),
        ("2026-03-11", "total"),
    ]
    tank, trough, total = table[:3]
    assert tank["nombre"] == "Tanque horizontal / horizontal tank"
    assert (tank["entregada_l"], tank["transferida_salida_l"], tank["extraida_l"]) == (
        "5000",
        "1500",  # whole litres, rounded
        "0",
    )
    assert (trough["bebida_l"], trough["litros_por_animal_dia"], trough["usada_l"]) == (
        "1500",
        "50",
        "1500",
    )
    assert total["nombre"] == "Rancho modelo Istmo"
    assert (total["transferida_entrada_l"], total["transferida_salida_l"]) == ("", "")
    assert (total["entregada_l"], total["usada_l"], total["almacenada_fin_l"]) == (
        "5000",
        "1500",
        "9495",
    )
    assert (tank["periodo_completo"], table[3]["periodo_completo"]) == ("sí", "no")
    # no readings of the trough on the second day: not zeros, unknown
    silent = table[4]
    assert (
        silent["bebida_l"],
        silent["almacenada_inicio_l"],
        silent["cuartos_de_hora_con_datos"],
    ) == (
        "",
        "",
        "0",
    )


def test_csv_in_english_has_the_same_cells_under_english_names() -> None:
    spanish = list(csv.reader(io.StringIO(balance_csv(two_days(), ISTMO, "es"))))
    english = list(csv.reader(io.StringIO(balance_csv(two_days(), ISTMO, "en"))))
    assert english[0] == header("en")
    assert english[0][:6] == ["date", "complete_period", "vessel", "label", "role", "harvested_l"]
    assert len(header("en")) == len(header("es")) == len(set(header("en")))
    yes_no = {"sí": "yes", "no": "no"}
    for es_row, en_row in zip(spanish[1:], english[1:], strict=True):
        assert en_row == [es_row[0], yes_no[es_row[1]], *es_row[2:]]
    assert CSV_BOM == "\ufeff"


def test_points_are_one_per_period_and_vessel_with_data_at_the_local_midnight() -> None:
    lines = balance_lines("oax-istmo", "day", two_days().periods)
    assert len(lines) == 3  # the silent trough of the second day has no point
    first = lines[0]
    assert first.startswith("water_balance,farm=oax-istmo,period=day,vessel=tank-steel ")
    assert first.endswith(f" {MARCH_10}")
    assert "buckets=96i" in first
    assert "complete=true" in first
    assert "delivered_l=5000.4" in first
    assert "harvested_l=0," in first
    assert "litres_per_animal_day" not in first
    assert "litres_per_animal_day=50.016" in lines[1]
    assert "complete=false" in lines[2]
    assert lines[2].endswith(f" {MARCH_10 + DAY_MS}")
    assert balance_lines("oax-istmo", "day", two_days().periods) == lines  # the same, again


def test_a_month_is_the_sum_of_its_days() -> None:
    days = [day(0), day(1)]
    month = combine(ISTMO, days, MARCH_10, MARCH_10 + 2 * DAY_MS, "2026-03")
    trough = month.vessels["trough-long"]
    assert trough.drunk_l == pytest.approx(2 * 1500.49)
    assert trough.litres_per_animal_day == pytest.approx(2 * 1500.49 / 30 / 2)
    assert (trough.start_l, trough.end_l, trough.buckets) == (1995.0, 1994.0, 192)
    assert month.totals.drunk_l == pytest.approx(2 * 1500.49)
    assert month.complete
    partial = combine(ISTMO, [day(0), day(1, complete=False)], MARCH_10, MARCH_10 + 2 * DAY_MS, "x")
    assert not partial.complete
    assert partial.vessels["trough-long"].litres_per_animal_day is None
