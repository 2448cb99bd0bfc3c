"""The pipelined ingest path on a real InfluxDB: formatting overlaps writing, yet every message
is acknowledged only after the database accepted its points, in the order it was received."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from support.servers import Influx
from support.waiting import wait_for

from collector.ingest import Ingestor
from farmwatch_shared.clock import SystemClock
from farmwatch_shared.contract import (
    DeadLetter,
    Reading,
    ReadingBatch,
    SensorKind,
    encode_batch,
    readings_topic,
)
from farmwatch_shared.influx import InfluxV1Writer
from farmwatch_shared.mqtt import Delivery
from farmwatch_shared.problems import ProblemLog

T0 = 1_795_000_000_000


class RecordingWriter:
    """The real InfluxDB writer, noting which sequence numbers each accepted write held."""

    def __init__(self, writer: InfluxV1Writer, events: list[tuple[str, object]]) -> None:
        self._writer = writer
        self._events = events

    def write(self, lines: Sequence[str]) -> None:
        self._writer.write(lines)
        seqs = {int(line.split(",seq=")[1].split("i", 1)[0]) for line in lines}
        self._events.append(("written", seqs))


def delivery(mid: int, seqs: range, value: float = 50.0) -> Delivery:
    readings = [
        Reading(
            seq=s,
            sensor="tank-main",
            kind=SensorKind.WATER_LEVEL,
            ts=T0 + s * 60_000,
            value=value,
            unit="%",
            raw=1300.0,
            flags=1 if s == 5 else 0,
        )
        for s in seqs
    ]
    batch = ReadingBatch(v=1, farm="oax-mixteca", agent="pi-1", readings=readings)
    return Delivery(
        mid, 1, readings_topic("oax-mixteca", "pi-1"), encode_batch(batch, compress=mid % 2 == 0)
    )


def run_ingestor(
    influx: Influx, events: list[tuple[str, object]], letters: list[DeadLetter]
) -> tuple[Ingestor, threading.Event, threading.Thread]:
    writer = InfluxV1Writer(influx.url, influx.database)
    writer.ensure_database()
    ingestor = Ingestor(
        writer=RecordingWriter(writer, events),
        acknowledge=lambda d: events.append(("ack", d.mid)),
        dead_letter=letters.append,
        clock=SystemClock(),
        problems=ProblemLog(logging.getLogger("test.ingest.pipeline")),
        batch_max_points=7,  # many small batches: the converter runs ahead of the writer
    )
    stop = threading.Event()
    thread = threading.Thread(target=ingestor.run, args=(stop,), daemon=True)
    thread.start()
    return ingestor, stop, thread


def test_acknowledged_only_after_written_and_in_received_order(influx: Influx) -> None:
    events: list[tuple[str, object]] = []
    letters: list[DeadLetter] = []
    ingestor, stop, thread = run_ingestor(influx, events, letters)
    deliveries = [delivery(mid, range(mid * 3, mid * 3 + 3)) for mid in range(200)]
    try:
        for d in deliveries:
            ingestor.submit(d)
        wait_for(lambda: sum(1 for kind, _ in events if kind == "ack") == 200, what="all acks")
    finally:
        stop.set()
        thread.join(10)
    assert not letters
    assert [mid for kind, mid in events if kind == "ack"] == list(range(200))
    written: set[int] = set()
    for kind, detail in list(events):
        if kind == "written":
            assert isinstance(detail, set)
            written |= detail
        else:
            assert isinstance(detail, int)
            assert set(range(detail * 3, detail * 3 + 3)) <= written, f"ack {detail} too early"
    assert ingestor.stats.batches_written >= 600 // 9  # many batches of at most 3 messages
    assert influx.count("water_level") == 600


def test_refused_point_is_dead_lettered_alone_and_the_rest_written(influx: Influx) -> None:
    events: list[tuple[str, object]] = []
    letters: list[DeadLetter] = []
    writer = InfluxV1Writer(influx.url, influx.database)
    writer.ensure_database()
    # a field type the database will hold against the one later point that has this field
    writer.write([f'water_level,sensor=other flags="text" {T0}'])
    ingestor, stop, thread = run_ingestor(influx, events, letters)
    try:
        for mid in range(4):
            ingestor.submit(delivery(mid, range(mid * 3, mid * 3 + 3)))
        wait_for(lambda: sum(1 for kind, _ in events if kind == "ack") == 4, what="acks")
    finally:
        stop.set()
        thread.join(10)
    assert [letter.reason for letter in letters] == ["database_refused"]
    assert "seq=5i" in letters[0].detail
    assert influx.count("water_level") == 11
