"""Water-balance scenarios with known inflow and consumption for the three shipped farms, and
their ground truth (``farmwatch_emulators.scenario.WaterScenario``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from farmwatch_emulators.scenario import DAY, HOUR, Delivery, Storm, WaterPlan, WaterScenario

WARM_UP_S = DAY
"""The scenario starts a day before the balance range (levels and usual outflow settle)."""
RANGE_DAYS = 7
END_S = WARM_UP_S + RANGE_DAYS * DAY
START_LOCAL = datetime(2026, 3, 9, tzinfo=ZoneInfo("America/Mexico_City"))
"""Scenario time 0: local midnight; the balance range is the 7 local days that follow."""
START_MS = int(START_LOCAL.timestamp() * 1000)

_STORMS = (
    Storm(WARM_UP_S + 1 * DAY + 13 * HOUR, 2.5 * HOUR, 24.0),  # an afternoon storm
    Storm(WARM_UP_S + 2 * DAY + 2 * HOUR, 1 * HOUR, 6.0),  # a night shower
    Storm(WARM_UP_S + 4 * DAY + 17 * HOUR, 1.5 * HOUR, 12.0),  # while the cattle drink
)


def plans(jitter_pct: float = 1.0, seed: int = 0) -> dict[str, WaterPlan]:
    """Farm id → its week: storms on the roof (La Mixteca, La Frailesca), trucks (a dry-day
    truck into La Mixteca's rain tank; two into Istmo's tank, where a shower harvests nothing),
    herds at the troughs, a tap and an unmonitored trough on La Mixteca's tank."""
    return {
        "oax-mixteca": WaterPlan(
            storms=_STORMS,
            catchment_m2=(("tank-main", 380.0),),
            deliveries=(Delivery("tank-main", WARM_UP_S + 11 * HOUR, 1800, 3000.0),),
            herd=(("trough-north", 14),),
            litres_per_head_day=55.0,
            other_use_l_day=(("tank-main", 900.0),),
            start_pct=(("tank-main", 45.0), ("trough-north", 95.0)),
            jitter_pct=jitter_pct,
            seed=seed,
        ),
        "chis-frailesca": WaterPlan(
            storms=_STORMS,
            catchment_m2=(("tank-hill", 900.0),),
            herd=(("trough-a", 15), ("trough-b", 10)),
            start_pct=(("tank-hill", 40.0), ("trough-a", 95.0), ("trough-b", 95.0)),
            jitter_pct=jitter_pct,
            seed=seed,
        ),
        "oax-istmo": WaterPlan(
            storms=(Storm(WARM_UP_S + 2 * DAY + 16 * HOUR, 1 * HOUR, 3.0),),
            deliveries=(
                Delivery("tank-steel", WARM_UP_S + 1 * DAY + 10 * HOUR, 2700, 5000.0),
                Delivery("tank-steel", WARM_UP_S + 4 * DAY + 15 * HOUR, 1800, 4000.0),
            ),
            start_pct=(("tank-steel", 50.0), ("trough-long", 95.0)),
            jitter_pct=jitter_pct,
            seed=seed,
        ),
    }


@dataclass(frozen=True)
class Truth:
    """What really came in and went out of a farm's vessels over the balance range."""

    harvested_l: float
    delivered_l: float
    used_l: float
    """Drunk at the troughs + drawn from the tanks."""


def truth(scenario: WaterScenario, start_s: float = WARM_UP_S, end_s: float = END_S) -> Truth:
    """The scenario's ground truth over ``[start_s, end_s)``."""

    def total(*flows: str) -> float:
        return sum(scenario.truth(v, f, start_s, end_s) for v in scenario.vessels for f in flows)

    return Truth(total("harvested"), total("delivered"), total("drunk", "drawn"))
