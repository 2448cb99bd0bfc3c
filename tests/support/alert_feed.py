"""Drives an alert engine and its SQLite store with readings and ticks at times the test sets
(no process, no broker): shared by the alerting unit tests."""

from __future__ import annotations

import logging
from pathlib import Path

from collector.alerts.engine import AlertEngine
from collector.alerts.store import AlertStore
from farmwatch_shared.contract import Reading, ReadingBatch, SensorKind
from farmwatch_shared.farm.alert_rules import AlertRule, LevelBelow
from farmwatch_shared.farm.model import FarmConfig
from farmwatch_shared.problems import ProblemLog
from support.clocks import SteppingClock
from support.harness import farm_config

T0 = 1_795_000_000_000
MIN = 60_000
FARM = "oax-mixteca"
PRIMARY, ESCALATION = "+529510000001", "+529510000002"
BOOT = "boot-1"


class Feed:
    """Drives an engine with readings at controlled times (moving ``now`` forward is time
    passing: wall and monotonic clocks move together; ``clock.step_wall`` steps only the wall
    clock)."""

    def __init__(self, tmp_path: Path, *rules: AlertRule) -> None:
        self.path = tmp_path / "alerts.sqlite3"
        self.config: FarmConfig = farm_config(FARM).model_copy(update={"alerts": rules})
        self.clock = SteppingClock(T0)
        self.problems = ProblemLog(logging.getLogger("test.alerts"))
        self.seq = 0
        self.boot_id = BOOT
        self.open()

    def open(self) -> None:
        self.store = AlertStore(self.path, self.clock)
        self.engine = AlertEngine(
            self.store, {FARM: self.config}, self.clock, self.problems, self.boot_id
        )

    def restart(self, boot_id: str | None = None) -> None:
        """Restart the service (``boot_id``: after a reboot of the machine)."""
        self.store.close()
        if boot_id is not None:
            self.boot_id = boot_id
        self.open()

    def reading(
        self,
        sensor: str,
        value: float,
        *,
        at_min: float,
        kind: str = "water_level",
        ts: int | None = None,
    ) -> None:
        """A reading taken now (``at_min`` after T0) or, with ``ts``, stamped ``ts``."""
        self.clock.now = T0 + int(at_min * MIN)
        unit = "mm" if kind == "rain" else "%"
        volume = value * 40.0 if kind == "water_level" else None
        stamp = self.clock.now if ts is None else ts
        reading = Reading(self.seq, sensor, SensorKind(kind), stamp, value, unit, 0.0, volume)
        self.seq += 1
        self.engine.ingest_batch(ReadingBatch(1, FARM, "pi-1", [reading]))

    def tick(self, at_min: float) -> None:
        self.clock.now = T0 + int(at_min * MIN)
        self.engine.tick()

    def sms(self, kind: str | None = None) -> list[dict[str, object]]:
        return [m for m in self.store.sms_log(FARM) if kind is None or m["kind"] == kind]

    def states(self) -> list[str]:
        return [e["to_state"] for e in self.store.events(FARM)]


def level_rule(**overrides: object) -> LevelBelow:
    """trough-north below 25 % for 5 minutes, recovering above 35 % for 2."""
    values: dict[str, object] = {
        "id": "trough-low",
        "type": "level_below",
        "sensor": "trough-north",
        "threshold_pct": 25,
        "recover_above_pct": 35,
        "for_s": 300,
        "resolve_for_s": 120,
        "cooldown_s": 3600,
        "reminder_interval_s": 0,
        "escalate_after_s": None,
    }
    values.update(overrides)
    return LevelBelow.model_validate(values)
