"""The alert engine: stores readings, evaluates every rule of the farms it owns, and commits
each state transition together with the SMS it causes (one SQLite transaction)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace

from collector.alerts.evaluate import (
    DEFAULT_TREND_WINDOW_MS,
    lookback_ms,
    observe,
    water_forecast,
)
from collector.alerts.messages import AlertFacts, Notice, render
from collector.alerts.state import step
from collector.alerts.store import AlertStore, RuleState
from collector.alerts.timeline import Timeline
from farmwatch_shared.clock import Clock
from farmwatch_shared.contract import (
    EARLIEST_TS_MS,
    MAX_FUTURE_MS,
    AgentStatus,
    ContractError,
    ReadingBatch,
    SensorKind,
    reading_problem,
)
from farmwatch_shared.farm.alert_rules import AlertRule, Contact, DaysLeftBelow, Silent
from farmwatch_shared.farm.model import FarmConfig
from farmwatch_shared.problems import ProblemLog

log = logging.getLogger(__name__)
PRUNE_EVERY_MS = 600_000
CHECKPOINT_EVERY_S = 10.0


def recipients(farm: FarmConfig, notice: Notice, escalated: bool) -> list[Contact]:
    """Who gets a notice: primary contacts; escalation contacts for escalations (and, once
    escalated, for reminders and the resolution too)."""
    primary = [c for c in farm.contacts if c.role == "primary"] or list(farm.contacts)
    escalation = [c for c in farm.contacts if c.role == "escalation"]
    if notice == "escalation":
        return escalation
    if notice in ("reminder", "resolved") and escalated:
        return primary + [c for c in escalation if c not in primary]
    return primary


class AlertEngine:
    """Evaluates the rules of ``farms`` on readings and time. One thread uses it.

    Timestamps (readings, events, SMS rows) are wall-clock time; the durations of the state
    machine are measured on the :class:`Timeline` (monotonic, continued across restarts of
    boot ``boot_id``)."""

    def __init__(
        self,
        store: AlertStore,
        farms: Mapping[str, FarmConfig],
        clock: Clock,
        problems: ProblemLog,
        boot_id: str,
    ) -> None:
        self._store = store
        self._farms = dict(farms)
        self._clock = clock
        self._problems = problems
        self._started_ms = int(store.set_meta_once("watch_started_ms", str(clock.now_ms())))
        self._last_prune_ms = 0
        self._timeline = Timeline(store, clock, boot_id)
        self._last_checkpoint = clock.monotonic()

    @property
    def farms(self) -> Mapping[str, FarmConfig]:
        """The farms this engine owns."""
        return self._farms

    def ingest_batch(self, batch: ReadingBatch) -> bool:
        """Store the readings of an owned farm and evaluate its rules; False if not owned."""
        farm = self._farms.get(batch.farm)
        if farm is None:
            return False
        known = {s.id: s.kind for s in farm.sensors}
        now = self._clock.now_ms()
        rows = []
        for reading in batch.readings:
            if known.get(reading.sensor) != reading.kind:
                self._problems.report("unknown_sensor", f"{batch.farm}/{reading.sensor}")
                continue
            # with the receiver's clock: a reading stamped ahead would stay the "latest" sample
            problem = reading_problem(reading, now)
            if problem is not None:
                cause = problem if problem == "implausible_time" else "impossible_value"
                self._problems.report(cause, f"{batch.farm}/{reading.sensor} ts {reading.ts}")
                continue
            rows.append((reading.sensor, reading.ts, reading.value, reading.volume_l))
        with self._store.transaction():
            self._store.add_samples(batch.farm, rows)
            if rows:
                newest = max(ts for _, ts, _, _ in rows)
                self._store.agent_seen(batch.farm, batch.agent, newest, online=True)
        self.evaluate_farm(batch.farm)
        return True

    def ingest_status(self, status: AgentStatus) -> bool:
        """Record an agent's status (its last will says ``offline``); False if not owned.
        Raise ContractError ``implausible_time`` for a time stamp outside what the receiver's
        clock allows."""
        if status.farm not in self._farms:
            return False
        now = self._clock.now_ms()
        ts = status.ts if status.ts is not None else now
        if not EARLIEST_TS_MS <= ts <= now + MAX_FUTURE_MS:
            # a sign of life stamped ahead would keep the agent "alive" until then
            raise ContractError("implausible_time", f"{status.farm}/{status.agent} ts {ts}")
        self._store.agent_seen(status.farm, status.agent, ts, online=status.state == "online")
        self.evaluate_farm(status.farm)
        return True

    def tick(self) -> None:
        """Time-driven work: silence, pending durations, reminders, escalation, pruning."""
        for farm_id in self._farms:
            self.evaluate_farm(farm_id)
        now = self._clock.now_ms()
        if abs(now - self._last_prune_ms) >= PRUNE_EVERY_MS:
            self._prune(now)
            self._last_prune_ms = now
        mono = self._clock.monotonic()
        if mono - self._last_checkpoint >= CHECKPOINT_EVERY_S:
            self._timeline.checkpoint()
            self._last_checkpoint = mono

    def evaluate_farm(self, farm_id: str) -> None:
        """Evaluate every rule of one farm now."""
        farm = self._farms[farm_id]
        for rule in farm.alerts:
            self._evaluate(farm, rule)

    def _evaluate(self, farm: FarmConfig, rule: AlertRule) -> None:
        now = self._clock.now_ms()
        obs = observe(self._store, farm.farm.id, rule, now, self._started_ms)
        with self._store.transaction():
            prev = self._store.rule_state(farm.farm.id, rule.id)
            result = step(prev, obs, self._timeline.now_ms(), rule)
            state = result.state
            if state == prev:
                return
            if result.opens_incident:
                incident = self._store.open_incident(farm.farm.id, rule.id, now)
                state = replace(state, incident=incident)
            for old, new in result.transitions:
                self._store.add_event(
                    now, farm.farm.id, rule.id, state.incident, old, new, obs.value, rule.type
                )
                if new in ("firing", "resolved"):
                    log.warning(
                        "Alerta / alert %s %s/%s #%s: %s → %s (valor/value %s)",
                        rule.severity,
                        farm.farm.id,
                        rule.id,
                        state.incident,
                        old,
                        new,
                        obs.value,
                    )
            if "resolved" in (new for _, new in result.transitions) and state.incident:
                self._store.resolve_incident(state.incident, now)
            for notice in result.notices:
                self._enqueue(farm, rule, state, notice, now)
                if notice in ("reminder", "escalation"):
                    self._store.add_event(
                        now, farm.farm.id, rule.id, state.incident, "firing", notice, obs.value
                    )
            self._store.put_rule_state(farm.farm.id, rule.id, state)

    def _enqueue(
        self, farm: FarmConfig, rule: AlertRule, state: RuleState, notice: Notice, now: int
    ) -> None:
        assert state.incident is not None
        facts = self.facts(farm, rule, state.value, state.incident, now)
        for contact in recipients(farm, notice, state.escalated):
            text = render(notice, facts, contact.language, contact.ascii_only)
            key = "/".join(
                (farm.farm.id, rule.id, str(state.incident), notice, str(state.reminders))
            )
            key += f"/{contact.phone}"
            self._store.enqueue_sms(
                key, farm.farm.id, contact.phone, text, notice, state.incident, now
            )

    def facts(
        self, farm: FarmConfig, rule: AlertRule, value: float | None, incident: int, now: int
    ) -> AlertFacts:
        """What a message about ``rule`` says."""
        sensor_id = getattr(rule, "sensor", None)
        label = ""
        days_left = None
        if sensor_id is not None:
            sensor = next(s for s in farm.sensors if s.id == sensor_id)
            label = sensor.label or sensor.id
            if sensor.kind == SensorKind.WATER_LEVEL and not isinstance(rule, DaysLeftBelow):
                days_rule = next(
                    (
                        r
                        for r in farm.alerts
                        if isinstance(r, DaysLeftBelow) and r.sensor == sensor_id
                    ),
                    None,
                )
                fc = water_forecast(self._store, farm.farm.id, sensor_id, now, days_rule)
                days_left = fc.days_left if fc is not None else None
        elif isinstance(rule, Silent):
            label = rule.agent or ""
        return AlertFacts(farm.farm.name, rule, label, value, days_left, incident)

    def _prune(self, now: int) -> None:
        for farm in self._farms.values():
            for sensor in farm.sensors:
                rules = [r for r in farm.alerts if getattr(r, "sensor", None) == sensor.id]
                # the NIVEL reply and the days left in messages use a day of trend at least
                keep = max([lookback_ms(r) for r in rules] + [DEFAULT_TREND_WINDOW_MS])
                self._store.prune(farm.farm.id, sensor.id, now - keep - 3_600_000)
