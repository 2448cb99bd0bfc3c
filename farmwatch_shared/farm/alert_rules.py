"""Alert rules and SMS contacts, declared as data in each farm file (``[[alerts]]``,
``[[contacts]]``). The alerting service evaluates them; the dashboards draw the same
thresholds, so there is one source of truth."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from farmwatch_shared.contract import IDENT_PATTERN

Ident = Annotated[str, Field(pattern=IDENT_PATTERN)]
Percent = Annotated[float, Field(ge=0, le=100)]


class _Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Ident
    """Rule id, unique in the farm."""
    severity: Literal["warning", "critical"] = "warning"
    """Written in the service's log line when the alert fires or resolves."""
    for_s: int = Field(default=600, ge=0)
    """How long the condition must hold before the alert fires (pending → firing)."""
    resolve_for_s: int = Field(default=300, ge=0)
    """How long the recovery condition must hold before the alert resolves."""
    reminder_interval_s: int = Field(default=6 * 3600, ge=0)
    """Repeat the alert this often while it fires unacknowledged (0: no reminders)."""
    cooldown_s: int = Field(default=3600, ge=0)
    """Minimum time between two firing messages of this rule: a rule that fires again soon
    after resolving is logged, and only messaged if it still fires when the cooldown ends."""
    escalate_after_s: int | None = Field(default=3600, ge=0)
    """Send to the ``escalation`` contacts when nobody acknowledged within this time (None:
    never; a farm file cannot write None, TOML has no null: a farm without ``escalation``
    contacts sends no escalation SMS)."""


class LevelBelow(_Rule):
    """Trough or tank level below a threshold; recovers above ``recover_above_pct``."""

    type: Literal["level_below"]
    sensor: Ident
    """Id of a ``water_level`` sensor."""
    threshold_pct: Percent
    """Fires below this level."""
    recover_above_pct: Percent | None = None
    """Hysteresis: defaults to threshold + 5 points."""


class DaysLeftBelow(_Rule):
    """Predicted days until a tank or trough is empty, from its recent level trend (and
    optionally herd size × litres per animal per day), below ``days``."""

    type: Literal["days_left_below"]
    sensor: Ident
    """Id of a ``water_level`` sensor."""
    days: float = Field(gt=0)
    """Fires when fewer days of water are left."""
    trend_window_h: float = Field(default=24.0, gt=0)
    """The use rate is estimated from this many hours of readings."""
    herd_size: int | None = Field(default=None, ge=1)
    """Animals drinking from it; with ``litres_per_animal_day`` their demand is a floor on
    the use rate."""
    litres_per_animal_day: float | None = Field(default=None, gt=0)
    """Water drunk per animal per day; set together with ``herd_size``."""
    recover_above_days: float | None = Field(default=None, gt=0)
    """Hysteresis: defaults to 1.25 × ``days``."""
    refill_min_pct: float = Field(default=1.0, gt=0)
    """A rise of at least this many level points between readings is a refill, not noise."""

    @model_validator(mode="after")
    def _herd_complete(self) -> DaysLeftBelow:
        if (self.herd_size is None) != (self.litres_per_animal_day is None):
            raise ValueError("set herd_size and litres_per_animal_day together")
        return self


class LevelFallingFaster(_Rule):
    """Level dropping faster than a rate (leak, broken float valve)."""

    type: Literal["level_falling_faster"]
    sensor: Ident
    """Id of a ``water_level`` sensor."""
    rate_pct_per_h: float = Field(gt=0)
    """Fires when the level falls faster than this (least-squares slope over ``window_min``)."""
    window_min: float = Field(default=30.0, gt=0)
    """The fall rate is fitted over this many minutes of readings. Recovers when the level
    falls at less than half the rate."""


class SoilMoistureBelow(_Rule):
    """Soil volumetric water content below a threshold (e.g. the pasture's wilting point)."""

    type: Literal["soil_moisture_below"]
    sensor: Ident
    """Id of a ``soil_moisture`` sensor."""
    threshold_pct: Percent
    """Fires below this volumetric water content."""
    recover_above_pct: Percent | None = None
    """Hysteresis: defaults to threshold + 2 points."""


class RainDeficit(_Rule):
    """Less than ``min_mm`` of rain over the last ``days`` days."""

    type: Literal["rain_deficit"]
    sensor: Ident
    """Id of a ``rain`` sensor."""
    min_mm: float = Field(ge=0)
    """Fires when less rain than this fell over the last ``days``."""
    days: int = Field(ge=1)
    """Length of the window (judged only once that much history is there)."""


class Silent(_Rule):
    """No reading from a sensor (or no sign of life from the agent, including its last will)
    for longer than ``after_s``."""

    type: Literal["silent"]
    sensor: Ident | None = None
    """Id of the sensor to watch (set this or ``agent``)."""
    agent: Ident | None = None
    """Id of the agent to watch (set this or ``sensor``)."""
    after_s: int = Field(default=3600, ge=60)
    """Fires after this long without a reading (or a sign of life)."""
    for_s: int = Field(default=0, ge=0)
    """``after_s`` already is the delay: no extra pending time by default."""
    resolve_for_s: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _one_target(self) -> Silent:
        if (self.sensor is None) == (self.agent is None):
            raise ValueError("a silent rule names a sensor or an agent (one of them)")
        return self


AlertRule = Annotated[
    LevelBelow | DaysLeftBelow | LevelFallingFaster | SoilMoistureBelow | RainDeficit | Silent,
    Field(discriminator="type"),
]


class Contact(BaseModel):
    """Someone who receives SMS alerts for this farm."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    """Who it is, for the people reading the farm file."""
    phone: Annotated[str, Field(pattern=r"^\+[1-9][0-9]{6,14}$")]
    """E.164, e.g. +529511234567."""
    language: Literal["es", "en"] = "es"
    """Language of the messages to this contact."""
    role: Literal["primary", "escalation"] = "primary"
    """Primary contacts get every alert (all contacts do when none is primary); escalation
    contacts get alerts nobody acknowledged within ``escalate_after_s``."""
    ascii_only: bool = False
    """Replace accented characters so messages stay in GSM 7-bit (cheaper, longer)."""
