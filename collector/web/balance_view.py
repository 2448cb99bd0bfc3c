"""The water balance on the farm page and as CSV: the figures of ``balance.py`` (its
InfluxDB reads ``balance_query.py``, ``balance_csv.py``) laid out for a phone. No balance
arithmetic here: the figures are ``farm_balance``'s, only rounded and labelled."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from collector.web import i18n
from collector.web.balance import FarmBalance, PeriodBalance, farm_balance
from collector.web.balance_csv import balance_csv
from collector.web.balance_query import InfluxReader, load_series
from collector.web.readings import Window
from farmwatch_shared.farm.model import FarmConfig, WaterLevelSensor
from farmwatch_shared.influx import InfluxQueryError, RetryableWriteError

log = logging.getLogger(__name__)

PAGE_DAYS = 7
"""Days listed on the page (today included)."""
CSV_DAYS = 31
CSV_MONTHS = 12


@dataclass(frozen=True)
class DayRow:
    """One local day of the farm's balance."""

    label: str
    came_in: str
    """Harvested + delivered."""
    used: str


@dataclass(frozen=True)
class VesselLine:
    """One vessel's flows this month, only the ones that are not zero."""

    id: str
    label: str
    flows: list[str]


@dataclass(frozen=True)
class BalanceView:
    """The balance section of the farm page."""

    month: str
    harvested: str
    delivered: str
    used: str
    autonomy: str
    vessels: list[VesselLine]
    days: list[DayRow]
    unavailable: bool = False


UNAVAILABLE = BalanceView("", "", "", "", "", [], [], unavailable=True)


def _litres(value: float) -> str:
    return f"{i18n.number(value, 0)} L"


_FLOWS = (
    ("harvested_l", "bal_harvested"),
    ("delivered_l", "bal_delivered"),
    ("transferred_in_l", "bal_in"),
    ("transferred_out_l", "bal_out"),
    ("drawn_l", "bal_drawn"),
    ("drunk_l", "bal_drunk"),
)


def vessel_lines(farm: FarmConfig, month: PeriodBalance, lang: str) -> list[VesselLine]:
    """Each vessel's flows in the month, in farm-file order."""
    labels = {s.id: i18n.label_in(s.label or s.id, lang) for s in farm.sensors}
    lines = []
    for vessel in month.vessels.values():
        flows = [
            i18n.text(key, lang, v=_litres(getattr(vessel, name)))
            for name, key in _FLOWS
            if round(getattr(vessel, name)) != 0
        ]
        if vessel.litres_per_animal_day is not None:
            flows.append(
                i18n.text("bal_per_animal", lang, v=i18n.number(vessel.litres_per_animal_day, 0))
            )
        if vessel.buckets == 0:
            flows = [i18n.text("no_reading", lang)]
        lines.append(VesselLine(vessel.vessel, labels.get(vessel.vessel, vessel.vessel), flows))
    return lines


def balance_view(
    farm: FarmConfig, daily: FarmBalance, monthly: FarmBalance, lang: str
) -> BalanceView:
    """The section from the balance per day (the last days) and per month (this month)."""
    month = monthly.periods[-1]
    totals = month.totals
    autonomy = (
        i18n.text("bal_autonomy", lang, d=i18n.days(monthly.autonomy_days, lang))
        if monthly.autonomy_days is not None
        else i18n.text("bal_no_autonomy", lang)
    )
    days = [
        DayRow(
            label=_day_label(p.label),
            came_in=_litres(p.totals.harvested_l + p.totals.delivered_l),
            used=_litres(p.totals.used_l),
        )
        for p in reversed(daily.periods)
    ]
    return BalanceView(
        month=month.label,
        harvested=_litres(totals.harvested_l),
        delivered=_litres(totals.delivered_l),
        used=_litres(totals.used_l),
        autonomy=autonomy,
        vessels=vessel_lines(farm, month, lang),
        days=days,
    )


def _day_label(iso: str) -> str:
    """``2026-12-01`` → ``01/12``."""
    return f"{iso[8:10]}/{iso[5:7]}"


def _days_before(w: Window, timezone: str, days: int) -> int:
    zone = ZoneInfo(timezone)
    today = datetime.fromtimestamp(w.day_start_ms / 1000, zone).date()
    day = today - timedelta(days=days)
    return int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp() * 1000)


def _month_start(w: Window, timezone: str, months_back: int = 0) -> int:
    zone = ZoneInfo(timezone)
    today = datetime.fromtimestamp(w.day_start_ms / 1000, zone).date()
    year, month = today.year, today.month - months_back
    while month < 1:
        year, month = year - 1, month + 12
    return int(datetime(year, month, 1, tzinfo=zone).timestamp() * 1000)


class WaterBalance:
    """The balance provider of the farm page (``app.BalanceProvider``)."""

    def __init__(self, reader: InfluxReader) -> None:
        self._reader = reader

    def section(self, farm: FarmConfig, w: Window, language: str) -> BalanceView | None:
        """The section: this month and the last days, from one read of InfluxDB."""
        if not any(isinstance(s, WaterLevelSensor) for s in farm.sensors):
            return None
        tz = farm.farm.timezone
        week = _days_before(w, tz, PAGE_DAYS - 1)
        month = _month_start(w, tz)
        try:
            volumes, rain = load_series(self._reader, farm, min(week, month), w.now_ms)
        except (InfluxQueryError, RetryableWriteError) as exc:
            log.warning("balance de agua / water balance: %s", exc)
            return UNAVAILABLE
        daily = farm_balance(farm, volumes, rain, week, w.now_ms, "day")
        monthly = farm_balance(farm, volumes, rain, month, w.now_ms, "month")
        return balance_view(farm, daily, monthly, language)

    def csv(
        self, farm: FarmConfig, w: Window, language: str, period: Literal["day", "month"]
    ) -> str:
        """The balance as CSV: the last 31 days by day, or the last 12 months by month."""
        tz = farm.farm.timezone
        start = (
            _days_before(w, tz, CSV_DAYS - 1)
            if period == "day"
            else _month_start(w, tz, CSV_MONTHS - 1)
        )
        volumes, rain = load_series(self._reader, farm, start, w.now_ms)
        balance = farm_balance(farm, volumes, rain, start, w.now_ms, period)
        return balance_csv(balance, farm, "en" if language == "en" else "es")
