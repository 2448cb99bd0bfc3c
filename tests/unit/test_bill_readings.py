"""The data bill's reading counts (benchmarks/bill.py): every sensor of an agent is billed,
LoRaWAN ones included, and the baseline's window holds whole intervals of each."""

from __future__ import annotations

from benchmarks.bill import (
    LORAWAN_UPLINK_S,
    STEADY_BATCHES,
    BillConfig,
    baseline_window,
    expected_statuses,
    heartbeats_between_drops,
    readings_per_day,
    sensor_interval,
    steady_batches,
)
from benchmarks.common import FARM_FILES
from farmwatch_shared.farm.model import LorawanSource, load_farm_config


def test_la_frailescas_lorawan_sensors_are_billed() -> None:
    farm = load_farm_config(FARM_FILES / "chis-frailesca.toml")
    lorawan = [s for s in farm.sensors_of("pi-1") if isinstance(s.source, LorawanSource)]
    assert [s.id for s in lorawan] == ["trough-hill", "soil-far"]
    assert {sensor_interval(farm, "pi-1", s) for s in lorawan} == {LORAWAN_UPLINK_S}
    # 4 sensors at 60 s (microcontroller, Modbus), the SDI-12 probe at 300 s, two LoRaWAN
    # devices every 20 minutes
    assert readings_per_day(farm, "pi-1") == 4 * 1440 + 288 + 2 * 72


def test_baseline_window_holds_whole_intervals() -> None:
    frailesca = load_farm_config(FARM_FILES / "chis-frailesca.toml")
    mixteca = load_farm_config(FARM_FILES / "oax-mixteca.toml")
    assert baseline_window(frailesca, "pi-1", 300.0) == 1200.0
    assert baseline_window(mixteca, "pi-1", 300.0) == 300.0


def test_the_agents_window_holds_whole_status_intervals_when_heartbeats_fall_between_drops() -> (
    None
):
    # shipped: batch age 20 min, heartbeat 6 h, a drop every 4 h: the reconnect puts each status
    assert not heartbeats_between_drops(BillConfig())
    assert steady_batches(BillConfig()) == STEADY_BATCHES == 3
    assert expected_statuses(BillConfig(), 3600.0) == 0
    hourly = BillConfig(edge_env={"FARMWATCH_EDGE_STATUS_INTERVAL_S": "3600"})
    assert heartbeats_between_drops(hourly)
    assert steady_batches(hourly) == 3
    assert expected_statuses(hourly, 3600.0) == 1
    quarter = {"FARMWATCH_EDGE_STATUS_INTERVAL_S": "3600", "FARMWATCH_EDGE_BATCH_MAX_AGE_S": "900"}
    assert steady_batches(BillConfig(edge_env=quarter)) == 4
    assert steady_batches(BillConfig(edge_env={"FARMWATCH_EDGE_STATUS_INTERVAL_S": "600"})) == 1
    assert not heartbeats_between_drops(BillConfig(drop_every_h=1.0, edge_env=hourly.edge_env))
    assert steady_batches(BillConfig(batches=2)) == 2
