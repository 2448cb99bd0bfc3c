"""Sensors the tests share."""

from __future__ import annotations

from farmwatch_shared.contract import SensorKind
from farmwatch_shared.farm.model import SoilMoistureSensor

PROBE = SoilMoistureSensor(
    id="probe",
    agent="pi-1",
    channel="S1",
    kind=SensorKind.SOIL_MOISTURE,
    coefficients=(0.0, 0.001),
)
"""One soil-moisture probe of oax-mixteca's ``pi-1`` on microcontroller channel S1."""
