"""The alert state machine as a pure function: (state, observation, now) → (state, notices).

ok → pending when the condition starts; pending → ok if it stops before ``for_s``; pending →
firing after ``for_s``; firing → resolved once the recovery condition (hysteresis) has held for
``resolve_for_s``. A firing message goes out unless another one for the same rule went out less
than ``cooldown_s`` ago; then it is sent only if the alert still fires when the cooldown ends.
While firing and unacknowledged: reminders every ``reminder_interval_s`` and, after
``escalate_after_s``, one message to the escalation contacts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from collector.alerts.messages import Notice
from collector.alerts.store import RuleState
from farmwatch_shared.farm.alert_rules import AlertRule


@dataclass(frozen=True)
class Observation:
    """What a rule's condition looks like now."""

    active: bool | None
    """The alert condition holds (None: not enough data to say)."""
    recovered: bool
    """The recovery condition (with hysteresis) holds."""
    value: float | None = None


@dataclass(frozen=True)
class Step:
    """The outcome of one evaluation."""

    state: RuleState
    transitions: tuple[tuple[str, str], ...] = ()
    notices: tuple[Notice, ...] = ()
    opens_incident: bool = False


def step(prev: RuleState, obs: Observation, now_ms: int, rule: AlertRule) -> Step:
    """Advance one rule's state. The caller assigns the incident number when one opens."""
    state = replace(prev, value=obs.value if obs.value is not None else prev.value)
    state, transitions = _toward_firing(state, obs, now_ms, rule)
    opens = ("pending", "firing") in transitions
    if state.state != "firing":
        return Step(state, tuple(transitions), (), opens)
    state, notices = _while_firing(state, obs, now_ms, rule)
    if state.state == "resolved":
        transitions.append(("firing", "resolved"))
    return Step(state, tuple(transitions), tuple(notices), opens)


def _toward_firing(
    state: RuleState, obs: Observation, now_ms: int, rule: AlertRule
) -> tuple[RuleState, list[tuple[str, str]]]:
    """ok/resolved → pending when the condition starts; pending → ok or, after for_s, firing."""
    transitions: list[tuple[str, str]] = []
    if state.state in ("ok", "resolved") and obs.active:
        transitions.append((state.state, "pending"))
        state = replace(state, state="pending", since_ms=now_ms)
    if state.state != "pending":
        return state, transitions
    if obs.active is False:
        transitions.append(("pending", "ok"))
        state = replace(state, state="ok", since_ms=now_ms)
    elif obs.active and now_ms - (state.since_ms or now_ms) >= rule.for_s * 1000:
        transitions.append(("pending", "firing"))
        state = replace(
            state,
            state="firing",
            since_ms=now_ms,
            incident=None,
            notified_ms=None,
            last_sent_ms=None,
            reminders=0,
            clearing_since_ms=None,
            acked=False,
            escalated=False,
        )
    return state, transitions


def _while_firing(
    state: RuleState, obs: Observation, now_ms: int, rule: AlertRule
) -> tuple[RuleState, list[Notice]]:
    """Firing → resolved once the recovery held for resolve_for_s; until then, the notices."""
    if obs.recovered:
        clearing = state.clearing_since_ms if state.clearing_since_ms is not None else now_ms
        state = replace(state, clearing_since_ms=clearing)
        if now_ms - clearing >= rule.resolve_for_s * 1000:
            notices: list[Notice] = ["resolved"] if state.notified_ms is not None else []
            state = replace(state, state="resolved", since_ms=now_ms, clearing_since_ms=None)
            return state, notices
    elif obs.active is not None:
        state = replace(state, clearing_since_ms=None)
    return _firing_notices(state, now_ms, rule)


def _firing_notices(
    state: RuleState, now_ms: int, rule: AlertRule
) -> tuple[RuleState, list[Notice]]:
    """The firing message (held back by the cooldown), then reminders and one escalation
    until someone acknowledges."""
    if state.notified_ms is None:
        last = state.last_fire_notice_ms
        if last is None or now_ms - last >= rule.cooldown_s * 1000:
            state = replace(
                state, notified_ms=now_ms, last_sent_ms=now_ms, last_fire_notice_ms=now_ms
            )
            return state, ["firing"]
        return state, []
    notified_ms = state.notified_ms
    if state.acked:
        return state, []
    if (
        rule.escalate_after_s is not None
        and not state.escalated
        and now_ms - notified_ms >= rule.escalate_after_s * 1000
    ):
        return replace(state, escalated=True, last_sent_ms=now_ms), ["escalation"]
    if (
        rule.reminder_interval_s
        and now_ms - (state.last_sent_ms or notified_ms) >= rule.reminder_interval_s * 1000
    ):
        return replace(state, reminders=state.reminders + 1, last_sent_ms=now_ms), ["reminder"]
    return state, []
