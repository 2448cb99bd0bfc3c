"""The water balance (collector/web/balance.py) on series whose every litre is known."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from support.paths import FARM_FILES
from support.water import END_S, START_MS, WARM_UP_S, plans, truth

from collector.web.balance import (
    FarmBalance,
    PeriodBalance,
    farm_balance,
    noise_sigma,
    periods,
    zigzag,
)
from farmwatch_emulators.scenario import DAY, HOUR, WaterPlan, WaterScenario
from farmwatch_shared.farm.model import (
    FarmConfig,
    FarmConfigError,
    WaterLevelSensor,
    load_farm_config,
)

ZONE = ZoneInfo("America/Mexico_City")
T0 = int(datetime(2026, 3, 9, tzinfo=ZONE).timestamp() * 1000)  # local midnight (UTC-6)
DAY_MS = 86_400_000
MINUTE = 60.0
TANK = {"shape": "rectangular", "length_mm": 2500, "width_mm": 2000, "height_mm": 2000}
"""10 000 L, 5 L per mm."""
TROUGH = {"shape": "rectangular", "length_mm": 2000, "width_mm": 500, "height_mm": 500}
"""500 L."""


def make_farm(*vessels: dict[str, Any], timezone: str = "America/Mexico_City") -> FarmConfig:
    """A farm with these water_level sensors (id, vessel and balance keys given)."""
    sensors = [
        {
            "agent": "pi-1",
            "channel": f"U{number}",
            "kind": "water_level",
            "transducer": {"type": "ultrasonic", "mount_height_mm": 2500},
            **vessel,
        }
        for number, vessel in enumerate(vessels, start=1)
    ]
    return FarmConfig.model_validate(
        {
            "farm": {"id": "test-farm", "name": "Rancho de prueba", "timezone": timezone},
            "agents": [{"id": "pi-1"}],
            "sensors": sensors,
        }
    )


def sampled(
    litres: Callable[[float], float], days: float, every_s: float = MINUTE
) -> list[tuple[int, float]]:
    """(ts_ms, litres) every ``every_s`` from T0 for ``days``."""
    return [
        (T0 + int(k * every_s * 1000), litres(k * every_s))
        for k in range(int(days * DAY / every_s))
    ]


def rain_at(*windows: tuple[float, float]) -> list[tuple[int, float]]:
    """Raw rain readings, 0.2 mm a minute inside each (start s, end s) window, 0 outside."""
    end = max(b for _, b in windows) + DAY
    return [
        (T0 + int(t * 1000), 0.2 if any(a <= t < b for a, b in windows) else 0.0)
        for t in (k * MINUTE for k in range(int(end / MINUTE)))
    ]


def ramp(t: float, start: float, duration: float, litres: float) -> float:
    """Litres brought in by ``t`` by a steady inflow."""
    return litres * min(max((t - start) / duration, 0.0), 1.0)


def days_of(balance: FarmBalance, vessel: str, flow: str) -> list[float]:
    return [getattr(p.vessels[vessel], flow) for p in balance.periods]


def total(balance: FarmBalance, vessel: str, flow: str) -> float:
    return math.fsum(days_of(balance, vessel, flow))


def assert_closes(period: PeriodBalance) -> None:
    """In = out + change of storage, for the farm."""
    totals = period.totals
    change = totals.stored_end_l - totals.stored_start_l
    assert totals.harvested_l + totals.delivered_l - totals.used_l == pytest.approx(
        change, abs=1e-6
    )


# --- farm file ----------------------------------------------------------------------------


def test_the_shipped_farms_declare_their_vessels() -> None:
    roles = {}
    for farm_id in ("oax-mixteca", "oax-istmo", "chis-frailesca"):
        farm = load_farm_config(FARM_FILES / f"{farm_id}.toml")
        for sensor in farm.sensors:
            if isinstance(sensor, WaterLevelSensor):
                roles[f"{farm_id}/{sensor.id}"] = (sensor.role, sensor.fed_from)
    assert roles == {
        "oax-mixteca/tank-main": ("rain_tank", None),
        "oax-mixteca/trough-north": ("trough", "tank-main"),
        "oax-istmo/tank-steel": ("delivered_tank", None),
        "oax-istmo/trough-long": ("trough", "tank-steel"),
        "chis-frailesca/tank-hill": ("rain_tank", None),
        "chis-frailesca/trough-a": ("trough", "tank-hill"),
        "chis-frailesca/trough-hill": ("trough", None),
        "chis-frailesca/trough-b": ("trough", "tank-hill"),
    }


def test_a_farm_with_vessel_roles_survives_a_round_trip_through_its_dump() -> None:
    for farm_id in ("oax-mixteca", "oax-istmo", "chis-frailesca"):
        farm = load_farm_config(FARM_FILES / f"{farm_id}.toml")
        again = FarmConfig.model_validate(farm.model_dump(mode="json"))
        assert again.sensors == farm.sensors


@pytest.mark.parametrize(
    ("vessels", "message"),
    [
        (
            [{"id": "trough", "vessel": TROUGH, "role": "trough", "fed_from": "tank"}],
            "fed_from names tank, not a water_level sensor of this farm",
        ),
        (
            [{"id": "trough", "vessel": TROUGH, "role": "trough", "fed_from": "trough"}],
            "fed_from names the sensor itself",
        ),
        (
            [
                {"id": "a", "vessel": TROUGH, "role": "trough"},
                {"id": "b", "vessel": TROUGH, "role": "trough", "fed_from": "a"},
            ],
            "fed_from names a, a trough",
        ),
        (
            [
                {"id": "a", "vessel": TANK, "role": "storage", "fed_from": "b"},
                {"id": "b", "vessel": TANK, "role": "storage", "fed_from": "a"},
            ],
            "fed_from goes round in a circle",
        ),
        (
            [{"id": "tank", "vessel": TANK, "role": "rain_tank", "fed_from": "x"}],
            "fed_from is for troughs and storage tanks, not a rain_tank",
        ),
        (
            [{"id": "tank", "vessel": TANK, "role": "delivered_tank", "animals": 10}],
            "animals drink at troughs, not a delivered_tank",
        ),
        (
            [{"id": "tank", "vessel": TANK, "role": "storage", "harvest_lag_h": 1}],
            "harvest_lag_h is for rain tanks only",
        ),
        (
            [{"id": "tank", "vessel": TANK, "role": "rain_tank", "only_feeds_fed_vessels": True}],
            "only_feeds_fed_vessels, but no vessel names it in fed_from",
        ),
        (
            [{"id": "tank", "vessel": TANK, "role": "pond"}],
            "Input should be 'rain_tank', 'delivered_tank', 'trough' or 'storage'",
        ),
    ],
)
def test_vessel_roles_that_do_not_fit_are_refused_with_a_clear_message(
    vessels: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        make_farm(*vessels)


def test_a_farm_file_with_a_wrong_fed_from_names_the_file_and_the_sensor(tmp_path: Any) -> None:
    text = (FARM_FILES / "oax-mixteca.toml").read_text(encoding="utf-8")
    path = tmp_path / "oax-mixteca.toml"
    path.write_text(text.replace('fed_from = "tank-main"', 'fed_from = "tank-mian"'), "utf-8")
    with pytest.raises(FarmConfigError, match=r"oax-mixteca.toml: .*trough-north: fed_from names"):
        load_farm_config(path)


# --- harvest, deliveries, transfers -----------------------------------------------------------


def test_a_storm_is_harvest_and_the_draw_meanwhile_is_counted() -> None:
    storm = (2 * DAY + 13 * HOUR, 2 * DAY + 15 * HOUR)  # 11 March, 13:00-15:00 local

    def tank(t: float) -> float:  # 50 L/h drawn all along, 3000 L from the roof till 15:30
        return 5000 - 50 * t / HOUR + ramp(t, storm[0], 2.5 * HOUR, 3000)

    farm = make_farm({"id": "tank", "vessel": TANK, "role": "rain_tank"})
    balance = farm_balance(
        farm, {"tank": sampled(tank, 4)}, rain_at(storm), T0 + DAY_MS, T0 + 4 * DAY_MS, "day"
    )
    assert [p.label for p in balance.periods] == ["2026-03-10", "2026-03-11", "2026-03-12"]
    harvested = days_of(balance, "tank", "harvested_l")
    assert harvested[0] == 0 == harvested[2]
    assert harvested[1] == pytest.approx(3000, rel=0.01)
    assert total(balance, "tank", "delivered_l") == 0
    assert total(balance, "tank", "drawn_l") == pytest.approx(3 * 1200, rel=0.01)
    for period in balance.periods:
        assert_closes(period)


def test_a_rise_long_after_the_rain_is_a_delivery_not_harvest() -> None:
    rain = (1 * DAY + 2 * HOUR, 1 * DAY + 3 * HOUR)  # a shower at 02:00 the roof did not catch

    def tank(t: float) -> float:  # a truck at 11:00 the same day (10 March)
        return 5000 - 40 * t / HOUR + ramp(t, 1 * DAY + 11 * HOUR, 0.5 * HOUR, 4000)

    farm = make_farm({"id": "tank", "vessel": TANK, "role": "rain_tank", "harvest_lag_h": 2})
    balance = farm_balance(
        farm, {"tank": sampled(tank, 3)}, rain_at(rain), T0 + DAY_MS, T0 + 3 * DAY_MS, "day"
    )
    assert total(balance, "tank", "harvested_l") == 0
    assert days_of(balance, "tank", "delivered_l")[0] == pytest.approx(4000, rel=0.01)
    assert total(balance, "tank", "drawn_l") == pytest.approx(2 * 960, rel=0.01)


def test_a_truck_into_a_delivered_tank_is_delivered_even_while_it_rains() -> None:
    truck = (1 * DAY + 10 * HOUR, 0.75 * HOUR)

    def tank(t: float) -> float:
        return 3000 - 60 * t / HOUR + ramp(t, *truck, 5000)

    farm = make_farm({"id": "tank", "vessel": TANK, "role": "delivered_tank"})
    rain = rain_at((truck[0], truck[0] + truck[1]))
    balance = farm_balance(
        farm, {"tank": sampled(tank, 3)}, rain, T0 + DAY_MS, T0 + 3 * DAY_MS, "day"
    )
    assert total(balance, "tank", "harvested_l") == 0
    assert total(balance, "tank", "delivered_l") == pytest.approx(5000, rel=0.01)
    assert total(balance, "tank", "drawn_l") == pytest.approx(2 * 1440, rel=0.01)


def float_valve_farm(only_feeds: bool) -> tuple[FarmConfig, WaterScenario]:
    farm = make_farm(
        {"id": "tank", "vessel": TANK, "role": "rain_tank", "only_feeds_fed_vessels": only_feeds},
        {"id": "trough", "vessel": TROUGH, "role": "trough", "fed_from": "tank", "animals": 12},
    )
    plan = WaterPlan(start_pct=(("tank", 70.0), ("trough", 95.0)), valve_l_h=300.0)
    return farm, WaterScenario(farm, plan, 4 * DAY)


def scenario_series(farm: FarmConfig, scenario: WaterScenario, days: float) -> dict[str, Any]:
    return {
        v: sampled(lambda t, v=v: scenario.litres(v, t), days)  # type: ignore[misc]
        for v in scenario.vessels
    }


def test_a_float_valve_troughs_refill_is_a_transfer_and_what_it_hid_is_drunk() -> None:
    farm, scenario = float_valve_farm(only_feeds=True)
    balance = farm_balance(
        farm, scenario_series(farm, scenario, 4), [], T0 + DAY_MS, T0 + 4 * DAY_MS, "day"
    )
    for day, period in enumerate(balance.periods, start=1):
        tank, trough = period.vessels["tank"], period.vessels["trough"]
        lo, hi = day * DAY, (day + 1) * DAY
        true_drunk = scenario.truth("trough", "drunk", lo, hi)
        assert true_drunk == pytest.approx(600, rel=1e-3)  # 12 head x 50 L
        # the trough rarely falls: the valve hides most of the drinking
        assert trough.drunk_l == pytest.approx(true_drunk, rel=0.02)
        assert trough.litres_per_animal_day == pytest.approx(50, rel=0.02)
        assert tank.transferred_out_l == pytest.approx(trough.transferred_in_l)
        assert (tank.harvested_l, tank.delivered_l, tank.drawn_l, tank.drunk_l) == (0, 0, 0, 0)
        assert (trough.harvested_l, trough.delivered_l, trough.drawn_l) == (0, 0, 0)
        assert period.totals.used_l == pytest.approx(true_drunk, rel=0.02)
        assert_closes(period)


def test_without_only_feeds_the_hidden_drinking_stays_drawn_from_the_tank() -> None:
    farm, scenario = float_valve_farm(only_feeds=False)
    balance = farm_balance(
        farm, scenario_series(farm, scenario, 4), [], T0 + DAY_MS, T0 + 4 * DAY_MS, "day"
    )
    fed, _ = float_valve_farm(only_feeds=True)
    closed = farm_balance(
        fed, scenario_series(fed, scenario, 4), [], T0 + DAY_MS, T0 + 4 * DAY_MS, "day"
    )
    for period, other in zip(balance.periods, closed.periods, strict=True):
        tank, trough = period.vessels["tank"], period.vessels["trough"]
        assert trough.drunk_l < 0.5 * other.vessels["trough"].drunk_l
        assert tank.drawn_l > 0
        assert tank.transferred_out_l == pytest.approx(trough.transferred_in_l)
        # the farm used the same water either way
        assert period.totals.used_l == pytest.approx(other.totals.used_l)


def test_two_troughs_share_the_hidden_inflow_by_their_herds() -> None:
    farm = make_farm(
        {"id": "tank", "vessel": TANK, "role": "delivered_tank", "only_feeds_fed_vessels": True},
        {"id": "a", "vessel": TROUGH, "role": "trough", "fed_from": "tank", "animals": 9},
        {"id": "b", "vessel": TROUGH, "role": "trough", "fed_from": "tank", "animals": 3},
    )
    scenario = WaterScenario(farm, WaterPlan(start_pct=(("tank", 80.0),)), 3 * DAY)
    balance = farm_balance(
        farm, scenario_series(farm, scenario, 3), [], T0 + DAY_MS, T0 + 3 * DAY_MS, "day"
    )
    for day, period in enumerate(balance.periods, start=1):
        a, b = period.vessels["a"], period.vessels["b"]
        for trough, litres in ((a, 450), (b, 150)):
            true = scenario.truth(trough.vessel, "drunk", day * DAY, (day + 1) * DAY)
            assert true == pytest.approx(litres, rel=1e-3)
            assert trough.drunk_l == pytest.approx(true, rel=0.05)
            assert trough.litres_per_animal_day == pytest.approx(50, rel=0.05)


# --- noise ----------------------------------------------------------------------------------


def jitter(seed: int, pct: float, capacity: float) -> Callable[[float], float]:
    """Uniform ± pct % of the capacity, new at every sample."""
    generator = random.Random(seed)
    return lambda _t: generator.uniform(-pct, pct) / 100 * capacity


@pytest.mark.parametrize("every_s", [MINUTE, 15 * MINUTE])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_jitter_alone_is_no_water_however_much_it_rains(every_s: float, seed: int) -> None:
    noise = jitter(seed, 2.0, 10_000)
    farm = make_farm(
        {"id": "tank", "vessel": TANK, "role": "rain_tank"},
        {"id": "trough", "vessel": TROUGH, "role": "trough", "fed_from": "tank"},
    )
    showers = tuple((d * DAY + 14 * HOUR, d * DAY + 15 * HOUR) for d in range(31))
    volumes = {
        "tank": sampled(lambda t: 6000 + noise(t), 31, every_s),
        "trough": sampled(lambda t: 400 + noise(t) / 20, 31, every_s),
    }
    balance = farm_balance(farm, volumes, rain_at(*showers), T0 + DAY_MS, T0 + 31 * DAY_MS, "day")
    assert len(balance.periods) == 30
    for period in balance.periods:
        for vessel in period.vessels.values():
            flows = (vessel.harvested_l, vessel.delivered_l, vessel.transferred_in_l)
            assert flows == (0, 0, 0)
            assert (vessel.drawn_l, vessel.drunk_l, vessel.transferred_out_l) == (0, 0, 0)
    assert balance.autonomy_days is None  # nothing used


def test_jitter_on_a_falling_tank_adds_no_harvest_and_keeps_the_draw() -> None:
    noise = jitter(7, 1.5, 10_000)
    farm = make_farm({"id": "tank", "vessel": TANK, "role": "rain_tank"})
    showers = tuple((d * DAY + 3 * HOUR, d * DAY + 4 * HOUR) for d in range(11))
    volumes = {"tank": sampled(lambda t: 9000 - 25 * t / HOUR + noise(t), 11)}
    balance = farm_balance(farm, volumes, rain_at(*showers), T0 + DAY_MS, T0 + 11 * DAY_MS, "day")
    assert total(balance, "tank", "harvested_l") == 0
    assert total(balance, "tank", "delivered_l") == 0
    assert total(balance, "tank", "drawn_l") == pytest.approx(10 * 600, rel=0.02)


def test_the_noise_estimate_and_the_zigzag_threshold() -> None:
    generator = random.Random(5)
    values = [1000 + generator.gauss(0, 10) + 0.5 * i for i in range(2000)]
    assert noise_sigma(values) == pytest.approx(10, rel=0.1)
    assert zigzag(values[:40], 80) == ([], 0)  # a 20 L trend and noise: no swing
    steps = [0.0] * 10 + [100.0] * 10 + [40.0] * 10
    # up from the first low; a plateau's turning point is its end
    assert zigzag(steps, 50) == ([0, 19, 29], 1)


# --- local days and months --------------------------------------------------------------------


def test_a_delivery_late_on_the_last_local_day_of_a_month_counts_in_that_month() -> None:
    # 21:00 local on 31 March is 03:00 UTC on 1 April; 03:00 local on 1 April is still in the
    # same local night (changes are placed to within the smoothing's hour)
    march_31 = (datetime(2026, 3, 31, 21, 0, tzinfo=ZONE).timestamp() * 1000 - T0) / 1000
    april_1 = march_31 + 6 * HOUR

    def tank(t: float) -> float:
        return 2000 + ramp(t, march_31, 0.5 * HOUR, 3000) + ramp(t, april_1, 0.5 * HOUR, 1000)

    farm = make_farm({"id": "tank", "vessel": TANK, "role": "delivered_tank"})
    start = int(datetime(2026, 3, 15, tzinfo=ZONE).timestamp() * 1000)
    end = int(datetime(2026, 4, 11, tzinfo=ZONE).timestamp() * 1000)
    months = farm_balance(farm, {"tank": sampled(tank, 33)}, [], start, end, "month")
    assert [(p.label, p.complete) for p in months.periods] == [
        ("2026-03", False),
        ("2026-04", False),
    ]
    assert months.periods[0].start_ms == int(datetime(2026, 3, 1, tzinfo=ZONE).timestamp() * 1000)
    assert months.periods[1].start_ms == int(datetime(2026, 4, 1, tzinfo=ZONE).timestamp() * 1000)
    march, april = (p.vessels["tank"].delivered_l for p in months.periods)
    assert march == pytest.approx(3000, rel=0.01)
    assert april == pytest.approx(1000, rel=0.03)
    days = farm_balance(farm, {"tank": sampled(tank, 33)}, [], start, end, "day")
    by_day = {p.label: p.vessels["tank"].delivered_l for p in days.periods}
    assert by_day["2026-03-31"] == pytest.approx(3000, rel=0.01)
    assert by_day["2026-04-01"] == pytest.approx(1000, rel=0.03)
    assert sum(by_day.values()) == pytest.approx(march + april)


def test_periods_follow_the_farms_time_zone_and_its_clock_changes() -> None:
    start = int(datetime(2026, 3, 7, 12, tzinfo=ZoneInfo("UTC")).timestamp() * 1000)
    end = start + 3 * DAY_MS
    mexico = periods("America/Mexico_City", start, end, "day")
    assert [label for _, _, label in mexico] == [
        "2026-03-07",
        "2026-03-08",
        "2026-03-09",
        "2026-03-10",
    ]
    assert all(hi - lo == DAY_MS for lo, hi, _ in mexico)
    assert datetime.fromtimestamp(mexico[1][0] / 1000, ZoneInfo("UTC")).hour == 6
    chicago = periods("America/Chicago", start, end, "day")  # clocks go forward on 8 March
    assert [hi - lo for lo, hi, _ in chicago][:2] == [DAY_MS, DAY_MS - 3_600_000]
    months = periods("America/Mexico_City", start, start + 60 * DAY_MS, "month")
    assert [label for _, _, label in months] == ["2026-03", "2026-04", "2026-05"]


# --- the rest of the contract -----------------------------------------------------------------


def test_autonomy_is_stored_water_over_recent_use() -> None:
    farm = make_farm({"id": "tank", "vessel": TANK, "role": "storage"})
    volumes = {"tank": sampled(lambda t: 9000 - 50 * t / HOUR, 5)}  # 1200 L a day
    balance = farm_balance(farm, volumes, [], T0 + DAY_MS, T0 + 5 * DAY_MS, "day")
    assert balance.use_per_day_l == pytest.approx(1200, rel=0.01)
    assert balance.stored_l == pytest.approx(9000 - 5 * 1200, rel=0.01)
    assert balance.autonomy_days == pytest.approx(2.5, rel=0.02)


def test_a_vessel_without_readings_has_no_levels_and_no_flows() -> None:
    farm = make_farm(
        {"id": "tank", "vessel": TANK, "role": "rain_tank"},
        {"id": "trough", "vessel": TROUGH, "role": "trough", "fed_from": "tank"},
    )
    volumes = {"tank": sampled(lambda t: 5000 - 20 * t / HOUR, 3)}
    balance = farm_balance(farm, volumes, [], T0 + DAY_MS, T0 + 3 * DAY_MS, "day")
    for period in balance.periods:
        trough = period.vessels["trough"]
        assert (trough.buckets, trough.start_l, trough.end_l) == (0, None, None)
        assert trough.drunk_l == 0
        assert period.vessels["tank"].buckets == 96
        assert period.vessels["tank"].drawn_l == pytest.approx(480, rel=0.01)
    empty = farm_balance(farm, {}, [], T0, T0 + DAY_MS, "day")
    assert (empty.autonomy_days, empty.stored_l) == (None, None)


@pytest.mark.parametrize("farm_id", ["oax-mixteca", "oax-istmo", "chis-frailesca"])
def test_a_week_on_each_shipped_farm_is_within_two_percent(farm_id: str) -> None:
    """The acceptance test's scenario without the pipeline: 1-minute readings, ±1 % jitter."""
    farm = load_farm_config(FARM_FILES / f"{farm_id}.toml")
    scenario = WaterScenario(farm, plans()[farm_id], END_S + HOUR)
    volumes = {
        s.id: [
            (START_MS + k * 60_000, s.vessel.volume_l(scenario.level_mm(s, k * 60.0)))
            for k in range(int(END_S // 60))
        ]
        for s in farm.sensors
        if isinstance(s, WaterLevelSensor)
    }
    rain = [
        (START_MS + k * 60_000, scenario.rain_mm(k * 60.0) - scenario.rain_mm((k - 1) * 60.0))
        for k in range(1, int(END_S // 60))
    ]
    start_ms = START_MS + int(WARM_UP_S * 1000)
    balance = farm_balance(farm, volumes, rain, start_ms, START_MS + int(END_S * 1000), "day")
    known = truth(scenario)
    inflow = math.fsum(p.totals.harvested_l + p.totals.delivered_l for p in balance.periods)
    harvested = math.fsum(p.totals.harvested_l for p in balance.periods)
    used = math.fsum(p.totals.used_l for p in balance.periods)
    assert harvested == pytest.approx(known.harvested_l, rel=0.02, abs=1e-9)
    assert inflow == pytest.approx(known.harvested_l + known.delivered_l, rel=0.02)
    assert used == pytest.approx(known.used_l, rel=0.02)
