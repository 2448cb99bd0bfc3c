"""SMS texts in Spanish (default) and English, short enough for one SMS where possible.

A message names the farm, the sensor, the value, the threshold and, for water, the days left.
The fixed wording uses only GSM 7-bit characters (``d`` for days, no ``í``), so a message is
one 160-character SMS unless a label from the farm file brings accents.
Labels in the farm files are written ``"español / English"``; each language takes its half.
``ascii_only`` replaces characters that would force UCS-2 (á, í, ó, ú…) by their plain letter;
characters in the GSM alphabet (ñ, é, ¿, ¡) stay.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Literal

from farmwatch_shared.farm.alert_rules import (
    AlertRule,
    DaysLeftBelow,
    LevelBelow,
    LevelFallingFaster,
    RainDeficit,
    Silent,
    SoilMoistureBelow,
)
from farmwatch_shared.sms_pdu import gsm7_septets

Language = Literal["es", "en"]
Notice = Literal["firing", "reminder", "escalation", "resolved"]


def label_for(label: str, fallback: str, language: Language) -> str:
    """The half of a bilingual ``"es / en"`` label for ``language``."""
    if not label:
        return fallback
    halves = [part.strip() for part in label.split(" / ")]
    if len(halves) == 2:
        return halves[0] if language == "es" else halves[1]
    return label


def to_gsm_friendly(text: str) -> str:
    """Replace characters outside the GSM 7-bit alphabet by their unaccented letter."""
    out = []
    for ch in text:
        if gsm7_septets(ch) is not None:
            out.append(ch)
            continue
        base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
        out.append(base if base and gsm7_septets(base) is not None else "?")
    return "".join(out)


def _num(value: float | None, digits: int = 0) -> str:
    return "?" if value is None else f"{value:.{digits}f}"


@dataclass(frozen=True)
class AlertFacts:
    """What a message says about an alert."""

    farm_name: str
    rule: AlertRule
    sensor_label: str
    """Raw (bilingual) label of the sensor or the agent id."""
    value: float | None
    days_left: float | None
    incident: int


_HEAD = {
    "es": {
        "firing": "ALERTA",
        "reminder": "RECORDATORIO",
        "escalation": "SIN RESPUESTA",
        "resolved": "RESUELTO",
    },
    "en": {
        "firing": "ALERT",
        "reminder": "REMINDER",
        "escalation": "UNANSWERED",
        "resolved": "RESOLVED",
    },
}


def _condition(facts: AlertFacts, language: Language) -> str:
    rule = facts.rule
    name = label_for(facts.sensor_label, getattr(rule, "sensor", "") or "", language)
    es = language == "es"
    v = facts.value
    if isinstance(rule, LevelBelow):
        return (
            f"{name} {_num(v)}% (umbral {_num(rule.threshold_pct)}%)"
            if es
            else f"{name} {_num(v)}% (threshold {_num(rule.threshold_pct)}%)"
        )
    if isinstance(rule, DaysLeftBelow):
        return (
            f"{name}: agua para {_num(v, 1)} d (umbral {_num(rule.days, 1)} d)"
            if es
            else f"{name}: water for {_num(v, 1)} d (threshold {_num(rule.days, 1)} d)"
        )
    if isinstance(rule, LevelFallingFaster):
        return (
            f"{name} baja {_num(v, 1)}%/h (umbral {_num(rule.rate_pct_per_h, 1)}%/h), ¿fuga?"
            if es
            else f"{name} falling {_num(v, 1)}%/h "
            f"(threshold {_num(rule.rate_pct_per_h, 1)}%/h), leak?"
        )
    if isinstance(rule, SoilMoistureBelow):
        return (
            f"{name} humedad {_num(v)}% (umbral {_num(rule.threshold_pct)}%)"
            if es
            else f"{name} {_num(v)}% (threshold {_num(rule.threshold_pct)}%)"
        )
    if isinstance(rule, RainDeficit):
        return (
            f"{name}: {_num(v, 1)} mm en {rule.days} d (umbral {_num(rule.min_mm, 1)} mm)"
            if es
            else f"{name}: {_num(v, 1)} mm in {rule.days} d (threshold {_num(rule.min_mm, 1)} mm)"
        )
    assert isinstance(rule, Silent)
    target = name if rule.sensor else (rule.agent or "")
    hours = _num(None if v is None else v / 3600, 1)
    return f"sin datos de {target} hace {hours} h" if es else f"no data from {target} for {hours} h"


def describe(facts: AlertFacts, language: Language) -> str:
    """The condition an alert is about (sensor, value, threshold), as its SMS words it but
    without head and request: e.g. ``Bebedero potrero norte 19% (umbral 25%)``."""
    return _condition(facts, language)


def render(notice: Notice, facts: AlertFacts, language: Language, ascii_only: bool) -> str:
    """The SMS text for one notice to one contact."""
    es = language == "es"
    head = f"{_HEAD[language][notice]} {facts.incident} {facts.farm_name}: "
    head += _condition(facts, language)
    if facts.days_left is not None and not isinstance(facts.rule, DaysLeftBelow):
        head += (
            f", agua para {facts.days_left:.1f} d" if es else f", water for {facts.days_left:.1f} d"
        )
    if notice == "resolved":
        text = head + (". Normal de nuevo." if es else ". Back to normal.")
    else:
        text = head + (f". Responda OK {facts.incident}" if es else f". Reply OK {facts.incident}")
    return to_gsm_friendly(text) if ascii_only else text


def finish(text: str, ascii_only: bool) -> str:
    """Apply the contact's character option to a free-form reply."""
    return to_gsm_friendly(text) if ascii_only else text
