"""Calibration records with effective dates; soil curves per soil type; recomputing from raw."""

from __future__ import annotations

import logging
import tomllib
from datetime import datetime
from pathlib import Path

import pytest
from pydantic import ValidationError
from support.harness import edge_committer

from edge.drivers.base import RawSample
from edge.drivers.poller import OutboxSink
from edge.outbox import Outbox
from farmwatch_shared.calibration.calibrate import Calibrator, SensorState
from farmwatch_shared.calibration.curves import CalibrationBook
from farmwatch_shared.farm.model import FarmConfig, SoilMoistureSensor
from farmwatch_shared.problems import ProblemLog

FARM = """
[farm]
id = "oax-test"
name = "Prueba"
timezone = "America/Mexico_City"

[[agents]]
id = "pi-1"

[[sensors]]
id = "soil-20cm"
agent = "pi-1"
channel = "S1"
kind = "soil_moisture"
coefficients = [87.857, -0.028571]   # factory curve, before any record

[[soil_curves]]
id = "clay-loam-mixteca"
soil_type = "franco arcilloso / clay loam"
curve = { type = "table", points = [[1200, 45.0], [2000, 30.0], [2800, 10.0]] }
source = "muestras gravimétricas / gravimetric samples, March 2026"

[[calibrations]]
sensor = "soil-20cm"
effective_from = 2026-03-15T00:00:00-06:00
soil_curve = "clay-loam-mixteca"
by = "técnico"

[[calibrations]]
sensor = "soil-20cm"
effective_from = 2026-05-01T00:00:00-06:00
curve = { type = "polynomial", coefficients = [85.0, -0.025] }
note = "sonda recalibrada / probe recalibrated in May"
"""


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


@pytest.fixture
def farm() -> FarmConfig:
    return FarmConfig.model_validate(tomllib.loads(FARM))


def test_a_reading_before_a_recalibration_uses_the_old_coefficients(farm: FarmConfig) -> None:
    calibrator = Calibrator(CalibrationBook(farm.calibrations, farm.soil_curves))
    (probe,) = farm.sensors
    assert isinstance(probe, SoilMoistureSensor)
    raw = 2400.0
    fresh = SensorState()
    # February: no record yet, the factory polynomial: 87.857 − 0.028571 × 2400
    feb = calibrator.calibrate(probe, raw, ms("2026-02-20T12:00:00-06:00"), fresh)
    assert feb.value == pytest.approx(19.2866)
    without_records = Calibrator(CalibrationBook([]))
    assert feb == without_records.calibrate(probe, raw, ms("2026-05-20T12:00:00-06:00"), fresh)
    # April: the clay-loam table, halfway between 30 % (2000) and 10 % (2800)
    april = calibrator.calibrate(probe, raw, ms("2026-04-30T23:59:59-06:00"), fresh)
    assert april.value == pytest.approx(20.0)
    # May: the new polynomial 85 − 0.025 × 2400
    may = calibrator.calibrate(probe, raw, ms("2026-05-01T00:00:00-06:00"), fresh)
    assert may.value == pytest.approx(25.0)


def test_recalibration_boundary_is_exact_to_the_millisecond(farm: FarmConfig) -> None:
    book = CalibrationBook(farm.calibrations, farm.soil_curves)
    may_first = ms("2026-05-01T00:00:00-06:00")
    before, at = book.curve_at("soil-20cm", may_first - 1), book.curve_at("soil-20cm", may_first)
    assert before is not None
    assert at is not None
    assert before.apply(1600.0) == pytest.approx(37.5)  # table: 45 → 30 between 1200 and 2000
    assert at.apply(1600.0) == pytest.approx(45.0)  # 85 − 0.025 × 1600
    assert book.curve_at("soil-20cm", ms("2026-03-14T23:59:59-06:00")) is None
    assert book.curve_at("other", may_first) is None


def test_raw_values_kept_in_the_outbox_recompute_under_later_records(
    farm: FarmConfig, tmp_path: Path
) -> None:
    problems = ProblemLog(logging.getLogger("test.calibration"))
    outbox = Outbox(tmp_path / "outbox.db", 100)

    class Clock:
        def now_ms(self) -> int:
            return ms("2026-06-01T00:00:00-06:00")

        def monotonic(self) -> float:
            return 0.0

        def sleep(self, seconds: float) -> None:
            raise AssertionError("nothing waits here")

    sink = OutboxSink(farm.sensors, edge_committer(outbox, Clock(), problems, farm))
    april, may = ms("2026-04-10T08:00:00-06:00"), ms("2026-05-10T08:00:00-06:00")
    sink(RawSample("soil-20cm", 1600.0, april, 0))
    sink(RawSample("soil-20cm", 1600.0, may, 0))
    stored = outbox.after(-1, 10)
    assert [(r.ts, r.raw, r.value) for r in stored] == [(april, 1600.0, 37.5), (may, 1600.0, 45.0)]
    # a June record discovered later changes nothing before June; raw values allow recomputing
    later = farm.model_validate(
        {
            **farm.model_dump(mode="json"),
            "calibrations": [
                *farm.model_dump(mode="json")["calibrations"],
                {
                    "sensor": "soil-20cm",
                    "effective_from": "2026-05-05T00:00:00-06:00",
                    "curve": {"type": "polynomial", "coefficients": [70.0, -0.02]},
                },
            ],
        }
    )
    book = CalibrationBook(later.calibrations, later.soil_curves)
    recomputed = book.recompute("soil-20cm", [(r.ts, r.raw) for r in stored])
    assert [ts for ts, _ in recomputed] == [april, may]
    assert [value for _, value in recomputed] == pytest.approx([37.5, 38.0])
    outbox.close()


def test_calibration_records_that_cannot_be_used_are_refused(farm: FarmConfig) -> None:
    data = farm.model_dump(mode="json")
    for broken in [
        {"sensor": "soil-20cm", "effective_from": "2026-07-01T00:00:00"},  # no curve, no zone
        {
            "sensor": "soil-20cm",
            "effective_from": "2026-07-01T00:00:00Z",
            "soil_curve": "sand",
        },
        {
            "sensor": "nonexistent",
            "effective_from": "2026-07-01T00:00:00Z",
            "soil_curve": "clay-loam-mixteca",
        },
    ]:
        with pytest.raises(ValidationError):
            FarmConfig.model_validate({**data, "calibrations": [*data["calibrations"], broken]})
    twice = [*farm.calibrations, farm.calibrations[0]]
    with pytest.raises(ValueError, match="share an effective date"):
        CalibrationBook(twice, farm.soil_curves)
