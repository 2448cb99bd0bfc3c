"""What a farm page says, as plain data: pure functions of the farm file, the readings, the
alerting service's answer, the time and the language. The templates only lay it out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup

from collector.web import i18n
from collector.web.alerts_client import FarmAlerts, Incident
from collector.web.readings import AgentState, FarmReadings, Latest, Window
from collector.web.sparkline import sparkline_svg
from farmwatch_shared.farm.alert_rules import LevelBelow
from farmwatch_shared.farm.model import (
    FarmConfig,
    RainGauge,
    SoilMoistureSensor,
    WaterLevelSensor,
)

STALE_MS = 30 * 60_000
"""A reading older than this is flagged as not recent."""
STEADY_PCT = 0.5
"""A change smaller than this (points of %) is shown as steady."""
MIN_TREND_MS = 30 * 60_000
"""Less time than this between the two readings says nothing about a trend."""
SOIL_SCALE_MIN = 50.0


@dataclass(frozen=True)
class VesselView:
    """A tank or trough."""

    id: str
    label: str
    level: str
    litres: str
    capacity: str
    days_left: str
    low: bool
    """Below an alert threshold, or with an open incident: drawn in the warning style."""
    trend: str
    age: str
    stale: bool
    spark: Markup


@dataclass(frozen=True)
class SoilView:
    """A soil moisture probe."""

    id: str
    label: str
    depth: str
    value: str
    status: str
    status_class: str
    """``bad``, ``warn``, ``ok``, ``wet`` or empty (no wilting point / capacity known)."""
    bounds: str
    trend: str
    age: str
    stale: bool
    spark: Markup


@dataclass(frozen=True)
class RainView:
    """A rain gauge's totals."""

    label: str
    today: str
    week: str
    month: str


@dataclass(frozen=True)
class AgentView:
    """An edge agent."""

    id: str
    online: bool | None
    """None: no status ever received."""
    state: str
    last_seen: str
    backlog: str
    clock: str
    clock_ok: bool


@dataclass(frozen=True)
class AlertView:
    """An open incident."""

    id: int
    text: str
    severity: str
    severity_class: str
    state: str
    opened: str
    acked: str
    can_ack: bool


@dataclass(frozen=True)
class FarmPage:
    """Everything the farm page shows."""

    farm_id: str
    name: str
    region: str
    vessels: list[VesselView]
    soils: list[SoilView]
    rain: list[RainView]
    agents: list[AgentView]
    alerts: list[AlertView]
    alerts_down: bool
    last_sms: str
    missing: str
    content_ms: int
    """The newest time among the data shown (the page's Last-Modified)."""


def _level_thresholds(farm: FarmConfig) -> dict[str, float]:
    thresholds: dict[str, float] = {}
    for rule in farm.alerts:
        if isinstance(rule, LevelBelow):
            previous = thresholds.get(rule.sensor, 0.0)
            thresholds[rule.sensor] = max(previous, rule.threshold_pct)
    return thresholds


def trend_text(latest: Latest | None, earlier: tuple[int, float] | None, lang: str) -> str:
    """The change since the first reading of the window ("▼ -3.2 % en 6 h"), or empty when
    the readings span too little time."""
    if latest is None or earlier is None:
        return ""
    span_ms = latest.ts_ms - earlier[0]
    if span_ms < MIN_TREND_MS:
        return ""
    delta = latest.value - earlier[1]
    arrow = "▲" if delta >= STEADY_PCT else "▼" if delta <= -STEADY_PCT else "▶"
    sign = "+" if delta > 0 and round(delta, 1) != 0 else ""
    hours = max(round(span_ms / 3_600_000), 1)
    return i18n.text("trend", lang, arrow=arrow, delta=f"{sign}{i18n.number(delta)} %", h=hours)


def days_left_text(alerts: FarmAlerts | None, sensor: str, lang: str) -> str:
    """The alerting service's forecast for ``sensor`` in words; "" when it is unreachable."""
    if alerts is None:
        return ""
    forecast = alerts.forecasts.get(sensor)
    if forecast is None:
        return i18n.text("no_forecast", lang)
    if forecast.days_left is None:
        return i18n.text("not_falling", lang)
    return i18n.text("days_left", lang, d=i18n.days(forecast.days_left, lang))


def _history_spark(
    points: Sequence[tuple[int, float]],
    w: Window,
    lo: float,
    hi: float,
    label: str,
    guides: Sequence[float],
) -> Markup:
    return sparkline_svg(
        points,
        start_ms=w.history_start_ms,
        end_ms=w.now_ms,
        lo=lo,
        hi=hi,
        label=label,
        guides=guides,
    )


def vessel_view(
    sensor: WaterLevelSensor,
    readings: FarmReadings,
    alerts: FarmAlerts | None,
    w: Window,
    lang: str,
    *,
    threshold: float | None,
) -> VesselView:
    """One tank or trough."""
    latest = readings.latest.get(sensor.id)
    label = i18n.label_in(sensor.label or sensor.id, lang)
    vessel = sensor.vessel
    capacity = vessel.volume_l(vessel.usable_height_mm)
    open_incident = alerts is not None and any(i.sensor == sensor.id for i in alerts.incidents)
    low = open_incident or (
        latest is not None and threshold is not None and latest.value < threshold
    )
    return VesselView(
        id=sensor.id,
        label=label,
        level=f"{i18n.number(latest.value)} %" if latest else "—",
        litres=(
            f"{i18n.number(latest.volume_l, 0)} L"
            if latest is not None and latest.volume_l is not None
            else ""
        ),
        capacity=i18n.text("of_capacity", lang, v=i18n.number(capacity, 0)),
        days_left=days_left_text(alerts, sensor.id, lang),
        low=low,
        trend=trend_text(latest, readings.earlier.get(sensor.id), lang),
        age=_age(latest, w, lang),
        stale=latest is None or w.now_ms - latest.ts_ms > STALE_MS,
        spark=_history_spark(
            readings.history.get(sensor.id, []),
            w,
            0.0,
            100.0,
            f"{label}: {i18n.text('week_chart', lang)}",
            [threshold] if threshold is not None else [],
        ),
    )


def _age(latest: Latest | None, w: Window, lang: str) -> str:
    if latest is None:
        return i18n.text("no_reading", lang)
    return i18n.text("read_ago", lang, age=i18n.age(w.now_ms - latest.ts_ms, lang))


def soil_status(
    value: float, wilting: float | None, capacity: float | None, lang: str
) -> tuple[str, str]:
    """(text, class) of a moisture reading against the soil's wilting point and field
    capacity: below wilting, dry (under half the available water left), good, saturated."""
    if wilting is None or capacity is None:
        return "", ""
    if value < wilting:
        return i18n.text("below_wilting", lang), "bad"
    if value > capacity:
        return i18n.text("saturated", lang), "wet"
    available = round((value - wilting) / (capacity - wilting) * 100)
    if available < 50:
        return i18n.text("dry", lang, p=available), "warn"
    return i18n.text("adequate", lang, p=available), "ok"


def soil_view(sensor: SoilMoistureSensor, readings: FarmReadings, w: Window, lang: str) -> SoilView:
    """One soil probe."""
    latest = readings.latest.get(sensor.id)
    label = i18n.label_in(sensor.label or sensor.id, lang)
    wilting, capacity = sensor.wilting_point_pct, sensor.field_capacity_pct
    status, status_class = (
        soil_status(latest.value, wilting, capacity, lang) if latest else ("", "")
    )
    history = readings.history.get(sensor.id, [])
    top = max([SOIL_SCALE_MIN, (capacity or 0) + 10, *(v for _, v in history)])
    bounds = (
        i18n.text("soil_bounds", lang, wp=i18n.number(wilting, 0), fc=i18n.number(capacity, 0))
        if wilting is not None and capacity is not None
        else ""
    )
    return SoilView(
        id=sensor.id,
        label=label,
        depth=i18n.text("depth", lang, cm=sensor.depth_cm),
        value=f"{i18n.number(latest.value)} %" if latest else "—",
        status=status,
        status_class=status_class,
        bounds=bounds,
        trend=trend_text(latest, readings.earlier.get(sensor.id), lang),
        age=_age(latest, w, lang),
        stale=latest is None or w.now_ms - latest.ts_ms > STALE_MS,
        spark=_history_spark(
            history,
            w,
            0.0,
            top,
            f"{label}: {i18n.text('week_chart', lang)}",
            [g for g in (wilting, capacity) if g is not None],
        ),
    )


def _mm(value: float | None) -> str:
    return "—" if value is None else i18n.number(value)


def rain_view(sensor: RainGauge, readings: FarmReadings, lang: str) -> RainView:
    """One rain gauge."""
    totals = readings.rain.get(sensor.id)
    label = i18n.label_in(sensor.label or sensor.id, lang)
    if totals is None:  # no rain recorded, or nothing could be read
        none = None if "rain" in readings.missing else 0.0
        return RainView(label=label, today=_mm(none), week=_mm(none), month=_mm(none))
    return RainView(
        label=label,
        today=_mm(totals.today_mm),
        week=_mm(totals.week_mm),
        month=_mm(totals.month_mm),
    )


def agent_view(
    agent_id: str, status: AgentState | None, last_reading_ms: int | None, w: Window, lang: str
) -> AgentView:
    """One agent: online or not (its last status), when last heard of (its status or its
    newest reading), its outbox backlog and clock."""
    seen = max(
        [t for t in (status.ts_ms if status else None, last_reading_ms) if t is not None],
        default=None,
    )
    if status is None:
        state = i18n.text("unknown", lang)
    else:
        state = i18n.text("online" if status.online else "offline", lang)
    return AgentView(
        id=agent_id,
        online=None if status is None else status.online,
        state=state,
        last_seen=""
        if seen is None
        else i18n.text("last_seen", lang, age=i18n.age(w.now_ms - seen, lang)),
        backlog="" if status is None else i18n.text("backlog", lang, n=status.outbox_backlog),
        clock=(
            ""
            if status is None
            else i18n.text("clock_ok" if status.clock_synced else "clock_bad", lang)
        ),
        clock_ok=status is not None and status.clock_synced,
    )


def alert_view(incident: Incident, w: Window, lang: str, may_ack: bool) -> AlertView:
    """One open incident."""
    acked = ""
    if incident.acked_ms is not None:
        acked = i18n.text(
            "acked",
            lang,
            who=incident.acked_by or "?",
            via=incident.acked_via or "?",
            age=i18n.age(w.now_ms - incident.acked_ms, lang),
        )
    severity = incident.severity if incident.severity in ("critical", "warning") else "info"
    state = incident.state if incident.state in ("firing", "pending") else "firing"
    return AlertView(
        id=incident.id,
        text=incident.text(lang) or incident.rule,
        severity=i18n.text(severity, lang),
        severity_class=severity,
        state=i18n.text(state, lang),
        opened=i18n.text("opened", lang, age=i18n.age(w.now_ms - incident.opened_ms, lang)),
        acked=acked,
        can_ack=may_ack and incident.acked_ms is None,
    )


def _content_ms(readings: FarmReadings, alerts: FarmAlerts | None) -> int:
    times = [r.ts_ms for r in readings.latest.values()]
    times += [a.ts_ms for a in readings.agents.values()]
    if alerts is not None:
        for incident in alerts.incidents:
            times += [incident.opened_ms, incident.acked_ms or 0]
        if alerts.last_sms is not None:
            times.append(alerts.last_sms.ts_ms)
    return max(times, default=0)


def farm_page(
    farm: FarmConfig,
    readings: FarmReadings,
    alerts: FarmAlerts | None,
    w: Window,
    lang: str,
    *,
    may_ack: bool,
) -> FarmPage:
    """The farm page; ``alerts`` None when the alerting service did not answer."""
    thresholds = _level_thresholds(farm)
    last_by_agent: dict[str, int] = {}
    for latest in readings.latest.values():
        last_by_agent[latest.agent] = max(last_by_agent.get(latest.agent, 0), latest.ts_ms)
    sms = ""
    if alerts is not None and alerts.last_sms is not None:
        when = i18n.text("last_sms", lang, age=i18n.age(w.now_ms - alerts.last_sms.ts_ms, lang))
        sms = f"{when}: {alerts.last_sms.text}"
    missing = (
        i18n.text("data_missing", lang, parts=", ".join(readings.missing))
        if readings.missing
        else ""
    )
    return FarmPage(
        farm_id=farm.farm.id,
        name=farm.farm.name,
        region=farm.farm.state,
        vessels=[
            vessel_view(s, readings, alerts, w, lang, threshold=thresholds.get(s.id))
            for s in farm.sensors
            if isinstance(s, WaterLevelSensor)
        ],
        soils=[
            soil_view(s, readings, w, lang)
            for s in farm.sensors
            if isinstance(s, SoilMoistureSensor)
        ],
        rain=[rain_view(s, readings, lang) for s in farm.sensors if isinstance(s, RainGauge)],
        agents=[
            agent_view(a.id, readings.agents.get(a.id), last_by_agent.get(a.id), w, lang)
            for a in farm.agents
        ],
        alerts=[alert_view(i, w, lang, may_ack) for i in alerts.incidents] if alerts else [],
        alerts_down=alerts is None,
        last_sms=sms,
        missing=missing,
        content_ms=_content_ms(readings, alerts),
    )


@dataclass(frozen=True)
class OverviewRow:
    """One farm in the overview."""

    farm_id: str
    name: str
    min_days: str
    alerts: str
    alerting: bool
    agents: str
    all_online: bool


def overview_row(
    farm: FarmConfig, alerts: FarmAlerts | None, agents: dict[str, AgentState], lang: str
) -> OverviewRow:
    """A farm's row: the fewest days of water left of its vessels, its open incidents, how
    many of its agents are online."""
    if alerts is None:
        min_days, count = "?", "?"
    else:
        left = [f.days_left for f in alerts.forecasts.values() if f and f.days_left is not None]
        min_days = i18n.days(min(left), lang) if left else "—"
        count = str(len(alerts.incidents))
    online = sum(1 for a in farm.agents if (s := agents.get(a.id)) is not None and s.online)
    total = len(farm.agents)
    state = i18n.text("online" if online == total else "offline", lang)
    return OverviewRow(
        farm_id=farm.farm.id,
        name=farm.farm.name,
        min_days=min_days,
        alerts=count,
        alerting=bool(alerts and alerts.incidents),
        agents=f"{state} ({online}/{total})",
        all_online=online == total,
    )
