"""The water balance as CSV: one row per period and vessel, then the farm's total per period.

``balance_csv(balance, farm, language) -> str``: a header row in Spanish or English; dates are
the periods' ISO labels in farm time (``2026-03-04`` for a day, ``2026-03`` for a month);
litres rounded to whole litres; an empty cell where a figure is not known (no readings, no
herd size, a partial period); CRLF line ends (RFC 4180). Totals rows have the vessel
``total`` and leave transfers empty (water moved inside the farm). Serve it as
``text/csv; charset=utf-8``; a spreadsheet that expects a byte-order mark gets one from
``CSV_BOM``.
"""

from __future__ import annotations

import csv
import io
from typing import Literal

from collector.web.balance import FarmBalance, FarmTotals, PeriodBalance, VesselBalance
from farmwatch_shared.farm.model import FarmConfig

Language = Literal["es", "en"]
CSV_BOM = "\ufeff"
TOTAL = "total"

_COLUMNS: tuple[tuple[str, str], ...] = (
    ("fecha", "date"),
    ("periodo_completo", "complete_period"),
    ("recipiente", "vessel"),
    ("nombre", "label"),
    ("rol", "role"),
    ("cosechada_l", "harvested_l"),
    ("entregada_l", "delivered_l"),
    ("transferida_entrada_l", "transferred_in_l"),
    ("transferida_salida_l", "transferred_out_l"),
    ("extraida_l", "drawn_l"),
    ("bebida_l", "drunk_l"),
    ("usada_l", "used_l"),
    ("litros_por_animal_dia", "litres_per_animal_day"),
    ("almacenada_inicio_l", "stored_start_l"),
    ("almacenada_fin_l", "stored_end_l"),
    ("cuartos_de_hora_con_datos", "quarter_hours_with_data"),
)
_YES_NO = {"es": ("sí", "no"), "en": ("yes", "no")}


def header(language: Language) -> list[str]:
    """The column names in ``language``."""
    index = 0 if language == "es" else 1
    return [names[index] for names in _COLUMNS]


def _litres(value: float | None) -> str:
    return "" if value is None else str(round(value))


def _vessel_row(
    period: PeriodBalance, vessel: VesselBalance, label: str, complete: str
) -> list[str]:
    known = vessel.buckets > 0
    flows = (
        vessel.harvested_l,
        vessel.delivered_l,
        vessel.transferred_in_l,
        vessel.transferred_out_l,
        vessel.drawn_l,
        vessel.drunk_l,
        vessel.drawn_l + vessel.drunk_l,
    )
    return [
        period.label,
        complete,
        vessel.vessel,
        label,
        vessel.role,
        *(_litres(f if known else None) for f in flows),
        _litres(vessel.litres_per_animal_day),
        _litres(vessel.start_l),
        _litres(vessel.end_l),
        str(vessel.buckets),
    ]


def _total_row(period: PeriodBalance, totals: FarmTotals, name: str, complete: str) -> list[str]:
    return [
        period.label,
        complete,
        TOTAL,
        name,
        "",
        _litres(totals.harvested_l),
        _litres(totals.delivered_l),
        "",
        "",
        _litres(totals.drawn_l),
        _litres(totals.drunk_l),
        _litres(totals.used_l),
        "",
        _litres(totals.stored_start_l),
        _litres(totals.stored_end_l),
        str(sum(v.buckets for v in period.vessels.values())),
    ]


def balance_csv(balance: FarmBalance, farm: FarmConfig, language: Language) -> str:
    """The balance as CSV text (module docstring)."""
    labels = {s.id: s.label or s.id for s in farm.sensors}
    yes, no = _YES_NO[language]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header(language))
    for period in balance.periods:
        complete = yes if period.complete else no
        for vessel in period.vessels.values():
            writer.writerow(_vessel_row(period, vessel, labels[vessel.vessel], complete))
        writer.writerow(_total_row(period, period.totals, farm.farm.name, complete))
    return out.getvalue()
