"""End to end on real services: pty bytes → edge agent → Mosquitto → collector → InfluxDB."""

from __future__ import annotations

import math
from pathlib import Path

from support.clocks import FrozenClock
from support.harness import collector_settings, start_agent, start_collector
from support.servers import Broker, Influx
from support.waiting import wait_for

T0 = 1_795_000_000_000  # 2026-11-18T…Z, in ms


def test_readings_of_all_three_kinds_arrive_calibrated_with_units_tags_and_edge_timestamps(
    broker: Broker, influx: Influx, tmp_path: Path
) -> None:
    collector = start_collector(collector_settings(broker, influx))
    clock = FrozenClock(T0)
    agent = start_agent(broker, tmp_path, "oax-mixteca", clock=clock)
    try:
        samples = [
            ("U1", 1300.0),  # tank: 2300 mm mount − 1300 mm distance = 1000 mm of 2000 mm
            ("U2", 450.0),  # trough: 750 − 450 = 300 mm of 600 mm
            ("S1", 2200.0),  # soil: 87.857 − 0.028571 × 2200
            ("P1", 10.0),  # rain gauge: first counter is the baseline
            ("P1", 15.0),  # 5 tips × 0.2 mm
        ]
        for i, (channel, raw) in enumerate(samples):
            clock.now = T0 + i * 60_000
            agent.mcu.sample(channel, raw)

            def committed(seq: int = i) -> bool:
                return agent.outbox.last_seq() == seq

            wait_for(committed, what=f"reading {i} committed")

        wait_for(lambda: influx.count("rain") == 2, what="rain points in InfluxDB")
        wait_for(lambda: influx.count("water_level") == 2, what="level points")
        wait_for(lambda: influx.count("soil_moisture") == 1, what="soil point")

        levels = influx.query(
            "SELECT value, raw, volume_l, seq FROM water_level GROUP BY farm, agent, sensor, unit"
        )
        by_sensor = {row["sensor"]: row for row in levels}
        tank, trough = by_sensor["tank-main"], by_sensor["trough-north"]
        assert (tank["time"], tank["value"], tank["raw"], tank["seq"]) == (T0, 50.0, 1300.0, 0)
        # vertical cylinder, 4 m across, 1 m of water: π × 2² × 1 m³
        assert math.isclose(tank["volume_l"], 12566.37, abs_tol=0.01)
        assert (tank["farm"], tank["agent"], tank["unit"]) == ("oax-mixteca", "pi-1", "%")
        # rectangular trough 2.4 m × 0.6 m, 0.3 m of water
        assert (trough["time"], trough["value"], trough["volume_l"]) == (T0 + 60_000, 50.0, 432.0)

        (soil,) = influx.query("SELECT value, raw, seq FROM soil_moisture GROUP BY sensor, unit")
        assert soil["time"] == T0 + 120_000
        assert math.isclose(soil["value"], 87.857 - 0.028571 * 2200, abs_tol=1e-4)
        assert (soil["raw"], soil["unit"], soil["sensor"]) == (2200.0, "%", "soil-20cm")

        rain = influx.query("SELECT value, raw, seq FROM rain GROUP BY sensor, unit")
        assert [(r["time"], r["value"], r["raw"], r["unit"]) for r in rain] == [
            (T0 + 180_000, 0.0, 10.0, "mm"),
            (T0 + 240_000, 1.0, 15.0, "mm"),
        ]
        assert sorted(r["seq"] for r in [*levels, soil, *rain]) == [0, 1, 2, 3, 4]
        # every committed reading left the outbox once the broker acknowledged it
        wait_for(lambda: agent.outbox.backlog() == 0, what="outbox drained")
        assert agent.mcu.unacknowledged == 0
    finally:
        agent.stop()
        collector.stop()


def test_agent_status_is_retained_and_reaches_influx(
    broker: Broker, influx: Influx, tmp_path: Path
) -> None:
    collector = start_collector(collector_settings(broker, influx))
    agent = start_agent(broker, tmp_path, "oax-istmo")
    try:
        rows = wait_for(
            lambda: influx.query("SELECT online, version FROM agent_status GROUP BY farm, agent"),
            what="status point",
        )
        assert rows[0]["farm"] == "oax-istmo"
        assert rows[0]["online"] is True
    finally:
        agent.stop()
    wait_for(
        lambda: any(
            r["online"] is False
            for r in influx.query("SELECT online FROM agent_status GROUP BY farm")
        ),
        what="offline status after a clean stop",
    )
    collector.stop()
