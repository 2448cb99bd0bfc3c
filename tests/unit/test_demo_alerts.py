"""The demo's pieces that need no process: the farm files' alert rules at demo speed, and the
scenario's stuck float valve that makes the demo's trough alert."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.paths import FARM_FILES, FARMS

from farmwatch_emulators.scenario import HOUR, DroughtScenario, ValveFault
from farmwatch_local.demo import STUCK_FROM_S, STUCK_UNTIL_S, STUCK_VALVE
from farmwatch_local.demo_alerts import OUT_OF_REACH_DAYS, alert_farm_text
from farmwatch_shared.farm.alert_rules import DaysLeftBelow, LevelBelow, Silent
from farmwatch_shared.farm.model import FarmConfig, WaterLevelSensor, load_farm_config

SPEEDUP = 240.0


def _demo_config(farm: str, tmp_path: Path) -> tuple[FarmConfig, FarmConfig]:
    shipped = load_farm_config(FARM_FILES / f"{farm}.toml")
    path = tmp_path / f"{farm}.toml"
    path.write_text(alert_farm_text((FARM_FILES / f"{farm}.toml").read_text(), shipped, SPEEDUP))
    return shipped, load_farm_config(path)


@pytest.mark.parametrize("farm", FARMS)
def test_the_rules_run_at_demo_speed_and_the_rest_of_the_farm_file_is_kept(
    farm: str, tmp_path: Path
) -> None:
    shipped, demo = _demo_config(farm, tmp_path)
    assert demo.model_dump(exclude={"alerts"}) == shipped.model_dump(exclude={"alerts"})
    rules = {r.id: r for r in demo.alerts}
    for rule in shipped.alerts:
        fast = rules[rule.id]
        assert fast.type == rule.type
        assert fast.for_s == -(-rule.for_s // 240)  # ten simulated minutes: 3 real seconds
        assert fast.cooldown_s * 240 >= rule.cooldown_s
        assert fast.reminder_interval_s * 240 >= rule.reminder_interval_s
        if isinstance(rule, Silent):
            assert fast.after_s == max(60, -(-rule.after_s // 240))  # type: ignore[union-attr]
        if isinstance(rule, LevelBelow):
            assert isinstance(fast, LevelBelow)
            assert (fast.sensor, fast.threshold_pct, fast.recover_above_pct, fast.severity) == (
                rule.sensor,
                rule.threshold_pct,
                rule.recover_above_pct,
                rule.severity,
            )
    days = [r for r in demo.alerts if isinstance(r, DaysLeftBelow)]
    water = {s.id for s in demo.sensors if isinstance(s, WaterLevelSensor)}
    assert {r.sensor for r in days} == water  # every tank and trough is forecast
    assert all(r.days == OUT_OF_REACH_DAYS for r in days)
    assert all(r.trend_window_h == pytest.approx(6 / SPEEDUP) for r in days)


def test_the_herd_drinks_per_real_day_at_demo_speed(tmp_path: Path) -> None:
    shipped, demo = _demo_config("oax-mixteca", tmp_path)
    (before,) = [r for r in shipped.alerts if isinstance(r, DaysLeftBelow)]
    (after,) = [r for r in demo.alerts if r.id == before.id]
    assert isinstance(after, DaysLeftBelow)
    assert before.litres_per_animal_day is not None
    assert after.litres_per_animal_day == pytest.approx(before.litres_per_animal_day * SPEEDUP)
    assert after.herd_size == before.herd_size


def test_a_stuck_valve_drains_the_trough_below_its_alert_then_the_refill_restores_it() -> None:
    config = load_farm_config(FARM_FILES / f"{STUCK_VALVE[0]}.toml")
    trough = next(s for s in config.sensors if s.id == STUCK_VALVE[1])
    (rule,) = [r for r in config.alerts if isinstance(r, LevelBelow) and r.sensor == trough.id]
    usual = DroughtScenario()
    fault = ValveFault(trough.id, STUCK_FROM_S, STUCK_UNTIL_S, low_pct=5.0)
    stuck = DroughtScenario(valve_faults=(fault,))
    assert stuck.state_pct(trough, STUCK_FROM_S) == usual.state_pct(trough, STUCK_FROM_S)
    middle = (STUCK_FROM_S + STUCK_UNTIL_S) / 2
    assert stuck.state_pct(trough, middle) < usual.state_pct(trough, middle)
    end = stuck.state_pct(trough, STUCK_UNTIL_S - 60)
    assert 5.0 <= end < rule.threshold_pct
    assert rule.recover_above_pct is not None
    refilled = stuck.state_pct(trough, STUCK_UNTIL_S)
    assert refilled == usual.state_pct(trough, STUCK_UNTIL_S) > rule.recover_above_pct
    # below the threshold within the demo's first minute of simulated time (240×)
    crossing = next(
        t
        for t in range(int(STUCK_FROM_S), int(STUCK_UNTIL_S), 60)
        if stuck.state_pct(trough, t) < rule.threshold_pct
    )
    assert (crossing - STUCK_FROM_S) / SPEEDUP < 60
    assert (STUCK_UNTIL_S - STUCK_FROM_S) / HOUR < 5
