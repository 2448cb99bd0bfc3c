"""Level → volume for every vessel shape, against volumes worked out by hand."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from farmwatch_shared.calibration.calibrate import Calibrated, Calibrator, SensorState
from farmwatch_shared.calibration.curves import CalibrationBook
from farmwatch_shared.farm.model import WaterLevelSensor


def water_level(tank: WaterLevelSensor, raw: float) -> Calibrated:
    """Level and volume by the calibrator, the one entry point."""
    return Calibrator(CalibrationBook([])).calibrate(tank, raw, 0, SensorState())


def sensor(transducer: dict[str, Any], vessel: dict[str, Any]) -> WaterLevelSensor:
    return WaterLevelSensor.model_validate(
        {
            "id": "tank",
            "agent": "pi-1",
            "channel": "U1",
            "kind": "water_level",
            "transducer": transducer,
            "vessel": vessel,
        }
    )


ULTRASONIC = {"type": "ultrasonic", "mount_height_mm": 2300}
PRESSURE = {"type": "pressure"}
STRAPPING = {
    "shape": "strapping_table",
    "points": [[0, 0], [500, 1200], [1000, 3000], [1500, 5400]],
}


@pytest.mark.parametrize(
    ("transducer", "vessel", "raw", "pct", "litres"),
    [
        # vertical cylinder 2 m across: 2300 − 800 = 1.5 m of water; π × 1² × 1.5 m³
        (
            ULTRASONIC,
            {"shape": "vertical_cylinder", "diameter_mm": 2000, "height_mm": 2000},
            800.0,
            75.0,
            4712.39,
        ),
        # rectangular trough 2 m × 0.6 m, 2300 − 1900 = 0.4 m of water: 0.48 m³
        (
            ULTRASONIC,
            {"shape": "rectangular", "length_mm": 2000, "width_mm": 600, "height_mm": 500},
            1900.0,
            80.0,
            480.0,
        ),
        # horizontal cylinder 1.8 m × 4 m, half full (0.9 m): π × 0.9² / 2 × 4 m³
        (
            ULTRASONIC,
            {"shape": "horizontal_cylinder", "diameter_mm": 1800, "length_mm": 4000},
            1400.0,
            50.0,
            5089.38,
        ),
        # same tank, 0.45 m of water: segment r²·acos(0.5) − 0.45·√0.6075
        # = 0.81 × 1.0471976 − 0.45 × 0.7794229 = 0.4974897 m², × 4 m
        (
            ULTRASONIC,
            {"shape": "horizontal_cylinder", "diameter_mm": 1800, "length_mm": 4000},
            1850.0,
            25.0,
            1989.96,
        ),
        # full: π × 0.81 × 4 m³
        (
            ULTRASONIC,
            {"shape": "horizontal_cylinder", "diameter_mm": 1800, "length_mm": 4000},
            500.0,
            100.0,
            10178.76,
        ),
        # pressure 4.903325 kPa = 0.5 m of water; horizontal cylinder 1 m × 2 m, half full:
        # π × 0.5² / 2 × 2 m³
        (
            PRESSURE,
            {"shape": "horizontal_cylinder", "diameter_mm": 1000, "length_mm": 2000},
            4.903325,
            50.0,
            785.40,
        ),
        # strapping table, 7.3549875 kPa = 750 mm: halfway between 1200 L and 3000 L
        (PRESSURE, STRAPPING, 7.3549875, 50.0, 2100.0),
        # strapping table, 2300 − 2050 = 250 mm: halfway between 0 and 1200 L
        (ULTRASONIC, STRAPPING, 2050.0, 250 / 1500 * 100, 600.0),
        # strapping table at its top row
        (ULTRASONIC, STRAPPING, 800.0, 100.0, 5400.0),
    ],
)
def test_volume_matches_hand_computed_litres(
    transducer: dict[str, Any], vessel: dict[str, Any], raw: float, pct: float, litres: float
) -> None:
    result = water_level(sensor(transducer, vessel), raw)
    assert result.value == pytest.approx(pct, abs=1e-6)
    assert result.volume_l == pytest.approx(litres, abs=0.01)


def test_pressure_sensor_above_the_floor_adds_its_elevation() -> None:
    # 4.903325 kPa = 500 mm over a sensor mounted 100 mm up: 600 mm of 2000 in a
    # 1 m × 1 m rectangular tank = 600 L
    tank = sensor(
        {"type": "pressure", "sensor_elevation_mm": 100},
        {"shape": "rectangular", "length_mm": 1000, "width_mm": 1000, "height_mm": 2000},
    )
    result = water_level(tank, 4.903325)
    assert result.value == pytest.approx(30.0)
    assert result.volume_l == pytest.approx(600.0)


@pytest.mark.parametrize(
    "points",
    [
        [[0, 0]],  # one row
        [[0, 0], [500, 1200], [400, 1300]],  # levels not rising
        [[0, 0], [500, 1200], [1000, 1100]],  # litres falling
        [[-10, 0], [500, 1200]],  # below the floor
    ],
)
def test_strapping_tables_that_cannot_be_right_are_refused(points: list[list[float]]) -> None:
    with pytest.raises(ValidationError):
        sensor(ULTRASONIC, {"shape": "strapping_table", "points": points})
