"""The outbox stores and returns one ``Reading``; kept state is typed and survives upgrades."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec

from edge.outbox import Held, McuPosition, Outbox, StateUpdate
from farmwatch_shared.calibration.calibrate import SensorState
from farmwatch_shared.calibration.rain import CounterSample
from farmwatch_shared.contract import Reading, ReadingFlag, SensorKind

T0 = 1_795_000_000_000
RAIN = Reading(seq=0, sensor="rain", kind=SensorKind.RAIN, ts=T0, value=0.4, unit="mm", raw=12.0)

# What the outbox of the previous release (sensor state as "<sensor>.<field>" keys) wrote on a
# farm: a rain gauge with its counter, a soil probe, and the microcontroller stream position.
OLD_FORMAT = """
CREATE TABLE readings (
    seq INTEGER PRIMARY KEY, sensor TEXT NOT NULL, kind TEXT NOT NULL, ts INTEGER NOT NULL,
    value REAL NOT NULL, unit TEXT NOT NULL, raw REAL NOT NULL, volume_l REAL,
    flags INTEGER NOT NULL DEFAULT 0, mono_ms INTEGER, boot_id TEXT
);
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE sensor_state (key TEXT PRIMARY KEY, value REAL NOT NULL);
CREATE TABLE quarantine (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, cause TEXT NOT NULL,
    detail TEXT NOT NULL
);
INSERT INTO meta VALUES ('next_seq', 8), ('dropped', 0);
INSERT INTO readings VALUES (7, 'soil-20cm', 'soil_moisture', 1795000000000, 31.5, '%', 1900.0,
    NULL, 0, NULL, NULL);
INSERT INTO sensor_state VALUES
    ('rain.last_ts', 1795000000000), ('rain.counter', 65530), ('rain.counter_ts', 1795000000000),
    ('rain.counter_boot', 7), ('soil-20cm.last_ts', 1795000000000),
    ('mcu.boot', 7), ('mcu.seq', 41);
"""


def test_add_numbers_the_reading_and_returns_it_as_stored(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db", 10)
    first = outbox.add(RAIN)
    second = outbox.add(RAIN)
    assert (first.seq, second.seq) == (0, 1)
    assert outbox.after(-1, 10) == [first, second]
    assert outbox.by_seq([1]) == [second]
    assert second == msgspec.structs.replace(RAIN, seq=1)
    outbox.close()


def test_state_is_written_with_the_reading_or_the_quarantined_input(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db", 10)
    assert outbox.sensor_state("rain") == SensorState()
    assert outbox.mcu_position() == McuPosition(None, -1)
    kept = SensorState(T0, CounterSample(T0, 12, 3))
    outbox.add(RAIN, StateUpdate({"rain": kept}, McuPosition(3, 0)))
    assert outbox.sensor_state("rain") == kept
    assert outbox.mcu_position() == McuPosition(3, 0)
    for neighbour in ("rai", "rain-2", "rain_2"):  # ids sharing a prefix keep their own state
        assert outbox.sensor_state(neighbour) == SensorState()
    # a bus counter has no counting run: no boot is kept for it
    refused = SensorState(T0 + 1, CounterSample(T0 + 1, 400))
    outbox.quarantine(T0, "rain_rate", "rain: counter 400", StateUpdate({"rain": refused}))
    assert outbox.sensor_state("rain") == refused
    assert outbox.quarantined() == [("rain_rate", "rain: counter 400")]
    outbox.set_mcu_position(McuPosition(4, 9))
    assert outbox.mcu_position() == McuPosition(4, 9)
    assert outbox.backlog() == 1
    outbox.close()


def test_a_held_reading_waits_for_the_clock_then_is_re_timed(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db", 10)
    unsynced = Reading(
        seq=0,
        sensor="rain",
        kind=SensorKind.RAIN,
        ts=86_400_000,
        value=0.0,
        unit="mm",
        raw=1.0,
        flags=ReadingFlag.CLOCK_UNSYNCED,
    )
    outbox.add(unsynced, held=Held(mono_ms=5_000, boot_id="boot-a"))
    assert outbox.after(-1, 10) == []
    assert outbox.correct_clock(T0, 6_000, "boot-a") == (1, 0)
    (fixed,) = outbox.after(-1, 10)
    assert (fixed.ts, fixed.flags) == (T0 - 1_000, ReadingFlag.CLOCK_CORRECTED)
    outbox.close()


def test_an_outbox_written_by_the_previous_release_keeps_its_state(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_FORMAT)
    db.close()
    outbox = Outbox(path, 100)
    assert outbox.sensor_state("rain") == SensorState(T0, CounterSample(T0, 65530, 7))
    assert outbox.sensor_state("soil-20cm") == SensorState(T0, None)
    assert outbox.mcu_position() == McuPosition(7, 41)
    (held,) = outbox.after(-1, 10)
    assert (held.seq, held.sensor, held.raw) == (7, "soil-20cm", 1900.0)
    kept = SensorState(T0 + 60_000, CounterSample(T0 + 60_000, 3, 8))
    assert outbox.add(RAIN, StateUpdate({"rain": kept}, McuPosition(8, 0))).seq == 8
    outbox.close()
    # what this release writes, the previous one reads: the same rows
    with sqlite3.connect(path) as db:
        rows = dict(db.execute("SELECT key, value FROM sensor_state").fetchall())
    db.close()
    assert rows == {
        "rain.last_ts": T0 + 60_000,
        "rain.counter": 3,
        "rain.counter_ts": T0 + 60_000,
        "rain.counter_boot": 8,
        "soil-20cm.last_ts": T0,
        "mcu.boot": 8,
        "mcu.seq": 0,
    }
