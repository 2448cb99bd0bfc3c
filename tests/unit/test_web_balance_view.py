"""The water balance as the farm page lays it out (collector/web/balance_view.py): farm_balance's
figures, rounded and labelled, nothing computed."""

from __future__ import annotations

import pytest
from support.paths import FARM_FILES

from collector.web.balance import (
    FarmBalance,
    FarmTotals,
    Period,
    PeriodBalance,
    VesselBalance,
)
from collector.web.balance_view import balance_view
from farmwatch_shared.farm.model import FarmConfig, load_farm_config

DAY = 86_400_000


@pytest.fixture(scope="module")
def mixteca() -> FarmConfig:
    return load_farm_config(FARM_FILES / "oax-mixteca.toml")


def period(label: str, vessels: dict[str, VesselBalance], totals: FarmTotals) -> PeriodBalance:
    return PeriodBalance(0, DAY, label, True, vessels, totals)


def balance(kind: Period, periods: list[PeriodBalance], autonomy: float | None) -> FarmBalance:
    return FarmBalance(
        farm="oax-mixteca",
        period=kind,
        start_ms=0,
        end_ms=DAY,
        periods=periods,
        autonomy_days=autonomy,
        use_per_day_l=1500.0,
        stored_l=14000.0,
        thresholds_l={},
    )


def test_the_month_the_vessels_and_the_last_days(mixteca: FarmConfig) -> None:
    tank = VesselBalance(
        "tank-main",
        "rain_tank",
        harvested_l=12345.6,
        transferred_out_l=2000.4,
        drawn_l=7000.0,
        buckets=96,
    )
    trough = VesselBalance(
        "trough-north",
        "trough",
        transferred_in_l=2000.4,
        drunk_l=2100.2,
        litres_per_animal_day=58.4,
        buckets=96,
    )
    month_totals = FarmTotals(12345.6, 500.0, 7000.0, 2100.2, 9000.0, 12745.4)
    monthly = balance(
        "month",
        [period("2026-12", {"tank-main": tank, "trough-north": trough}, month_totals)],
        9.33,
    )
    days = [
        period("2026-11-30", {}, FarmTotals(0.0, 0.0, 1000.0, 400.0, 0.0, 0.0)),
        period("2026-12-01", {}, FarmTotals(12000.0, 500.0, 900.0, 300.0, 0.0, 0.0)),
    ]
    view = balance_view(mixteca, balance("day", days, 9.33), monthly, "es")
    assert (view.month, view.harvested, view.delivered, view.used) == (
        "2026-12",
        "12,346 L",
        "500 L",
        "9,100 L",
    )
    assert view.autonomy == "Autonomía: 9.3 días sin más agua"
    tank_line, trough_line = view.vessels
    assert tank_line.label == "Tanque de captación"
    assert tank_line.flows == [
        "cosechada 12,346 L",
        "pasada a otro recipiente 2,000 L",
        "extraída 7,000 L",
    ]
    assert trough_line.flows == [
        "recibida de otro recipiente 2,000 L",
        "bebida 2,100 L",
        "58 L por animal al día",
    ]
    assert [(d.label, d.came_in, d.used) for d in view.days] == [
        ("01/12", "12,500 L", "1,200 L"),  # newest first
        ("30/11", "0 L", "1,400 L"),
    ]


def test_no_data_and_no_autonomy_say_so(mixteca: FarmConfig) -> None:
    empty = VesselBalance("tank-main", "rain_tank")
    totals = FarmTotals(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    monthly = balance("month", [period("2026-12", {"tank-main": empty}, totals)], None)
    view = balance_view(mixteca, balance("day", [], None), monthly, "en")
    assert view.autonomy == "Autonomy: not enough data"
    assert view.vessels[0].flows == ["No readings"]
    assert view.vessels[0].label == "rainwater tank"
