"""Each MQTT message is isolated (finding 1): any exception while decoding or evaluating it
quarantines that message whole, counted and logged once per cause, and the next one is handled;
only a failing store stops the service."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from support.clocks import SteppingClock

from collector.alerts.intake import MessageIntake
from collector.alerts.store import AlertStore
from farmwatch_shared.contract import (
    AgentStatus,
    Reading,
    ReadingBatch,
    SensorKind,
    encode_batch,
    readings_topic,
    status_topic,
)
from farmwatch_shared.mqtt import Delivery
from farmwatch_shared.problems import ProblemLog

T0 = 1_795_000_000_000
FARM = "oax-mixteca"


class Engine:
    """An engine that fails the way a bug would, on the readings it is told to."""

    def __init__(self, failure: BaseException) -> None:
        self.failure = failure
        self.batches: list[ReadingBatch] = []

    def ingest_batch(self, batch: ReadingBatch) -> bool:
        if batch.readings[0].value < 0:
            raise self.failure
        self.batches.append(batch)
        return True

    def ingest_status(self, status: AgentStatus) -> bool:
        return True


def _batch(value: float) -> Delivery:
    reading = Reading(0, "trough-north", SensorKind.WATER_LEVEL, T0, value, "%", 0.0, None)
    payload = encode_batch(ReadingBatch(1, FARM, "pi-1", [reading]))
    return Delivery(1, 1, readings_topic(FARM, "pi-1"), payload)


def _intake(tmp_path: Path, engine: Engine) -> tuple[MessageIntake, AlertStore, ProblemLog]:
    clock = SteppingClock(T0)
    store = AlertStore(tmp_path / "alerts.sqlite3", clock)
    problems = ProblemLog(logging.getLogger("test.intake"))
    return MessageIntake(engine, store, {FARM}, clock, problems), store, problems


@pytest.mark.parametrize(
    "failure", [RecursionError("deep"), ValueError("bad"), ZeroDivisionError(), KeyError("k")]
)
def test_any_exception_quarantines_the_message_and_the_next_one_is_handled(
    tmp_path: Path, failure: Exception
) -> None:
    engine = Engine(failure)
    intake, store, problems = _intake(tmp_path, engine)
    bad = _batch(-1.0)
    for _ in range(3):
        assert intake.handle(bad) == f"unexpected_{type(failure).__name__}"
    assert intake.handle(_batch(50.0)) is None
    assert len(engine.batches) == 1
    rows = store.quarantined("mqtt")
    assert len(rows) == 3
    assert {(r["origin"], r["payload"]) for r in rows} == {(bad.topic, bad.payload)}
    assert problems.count(f"unexpected_{type(failure).__name__}") == 3
    store.close()


def test_refused_payloads_are_quarantined_whole(tmp_path: Path) -> None:
    intake, store, problems = _intake(tmp_path, Engine(ValueError()))
    deep = b'{"v":1,"farm":"oax-mixteca","agent":"pi-1","state":"online","x":' + b"[" * 1000
    deep += b"]" * 1000 + b"}"
    big = b"\x78" + bytes(range(200))
    for payload in (deep, big, b"\xff\xfe"):
        assert intake.handle(Delivery(1, 1, status_topic(FARM, "pi-1"), payload)) is not None
    assert [r["payload"] for r in store.quarantined()] == [deep, big, b"\xff\xfe"]
    assert problems.total() == 3
    store.close()


def test_a_failing_store_is_not_the_message_s_fault(tmp_path: Path) -> None:
    intake, store, _ = _intake(tmp_path, Engine(sqlite3.OperationalError("disk I/O error")))
    with pytest.raises(sqlite3.OperationalError):
        intake.handle(_batch(-1.0))  # the service stops; the message is redelivered
    assert store.quarantined() == []
    store.close()
