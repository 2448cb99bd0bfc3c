"""Property-based: random bytes on the serial line and random MQTT payloads never crash
anything, and the valid data around the garbage still arrives."""

from __future__ import annotations

import itertools
import json
import logging
import tempfile
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.harness import edge_committer
from support.servers import Influx
from support.waiting import wait_for

from collector.ingest import Ingestor
from edge.mcu_link import McuLink
from edge.outbox import Outbox
from farmwatch_local.services import InfluxServer
from farmwatch_shared.clock import SystemClock
from farmwatch_shared.contract import (
    DeadLetter,
    Reading,
    ReadingBatch,
    SensorKind,
    encode_batch,
    readings_topic,
)
from farmwatch_shared.farm.model import SoilMoistureSensor
from farmwatch_shared.influx import InfluxV1Writer
from farmwatch_shared.mcu_protocol import LineAssembler, McuReading, reading_line
from farmwatch_shared.mqtt import Delivery
from farmwatch_shared.problems import ProblemLog

PROBE = SoilMoistureSensor(
    id="probe",
    agent="pi-1",
    channel="S1",
    kind=SensorKind.SOIL_MOISTURE,
    coefficients=(0.0, 0.001),
)
garbage = st.binary(max_size=300) | st.sampled_from(
    [
        b"$",
        b"*",
        b"$R,1,0,S1,5,0*0000",
        b"$R,1,0,S1,5,0",
        b"\r",
        b"$R,1,1,S1,1e9,0*FFFF",
        b"$H,x,1,1,1,1*0000",
        b"\xff" * 200,
        b"$A,1,1*1234",
        b"$S*8B66",
    ]
)


@settings(max_examples=150, deadline=None)
@given(
    noise=st.lists(garbage, min_size=1, max_size=12),
    cuts=st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=30),
)
def test_serial_garbage_never_escapes_and_the_valid_lines_around_it_are_committed(
    noise: list[bytes], cuts: list[int]
) -> None:
    valid = [reading_line(McuReading(1, seq, "S1", float(seq), 0)) for seq in range(len(noise))]
    stream = b"".join(junk + b"\n" + line for junk, line in zip(noise, valid, strict=True))
    with tempfile.TemporaryDirectory() as tmp:
        outbox = Outbox(Path(tmp) / "outbox.sqlite3", 1000)
        problems = ProblemLog(logging.getLogger("test.property.serial"))
        clock = SystemClock()
        committer = edge_committer(outbox, clock, problems)
        link = McuLink([PROBE], outbox, clock, problems, committer)
        assembler = LineAssembler()
        position = 0
        for cut in itertools.cycle(cuts):  # the serial port hands over arbitrary chunks
            if position >= len(stream):
                break
            for item in assembler.feed(stream[position : position + cut]):
                link.handle(item)
            position += cut
        held = outbox.after(-1, 1000)
        outbox.close()
    assert [r.raw for r in held] == [float(seq) for seq in range(len(valid))]


@dataclass
class IngestRig:
    """A real Ingestor writing to the real InfluxDB, on its own thread."""

    ingestor: Ingestor
    influx: Influx
    acked: list[int] = field(default_factory=list)
    letters: list[DeadLetter] = field(default_factory=list)
    mids: Iterator[int] = field(default_factory=itertools.count)


@pytest.fixture(scope="module")
def ingest_rig(influx_server: InfluxServer) -> Iterator[IngestRig]:
    influx = Influx(influx_server, "property_ingest")
    writer = InfluxV1Writer(influx.url, influx.database)
    writer.ensure_database()
    acked: list[int] = []
    letters: list[DeadLetter] = []
    ingestor = Ingestor(
        writer=writer,
        acknowledge=lambda delivery: acked.append(delivery.mid),
        dead_letter=letters.append,
        clock=SystemClock(),
        problems=ProblemLog(logging.getLogger("test.property.ingest")),
    )
    stop = threading.Event()
    thread = threading.Thread(target=ingestor.run, args=(stop,), daemon=True)
    thread.start()
    yield IngestRig(ingestor, influx, acked, letters)
    stop.set()
    thread.join(5)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=30,
)
payloads = (
    st.binary(max_size=400)
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=200).map(zlib.compress)
    | st.fixed_dictionaries(
        {
            "v": st.just(1),
            "farm": st.just("oax-mixteca"),
            "agent": st.just("pi-1"),
            "readings": st.lists(st.lists(json_values, max_size=9), max_size=4),
        }
    ).map(lambda v: json.dumps(v).encode())
)
_valid_seq = itertools.count(1)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(junk=st.lists(payloads, min_size=1, max_size=6))
def test_random_payloads_never_escape_the_collector_and_valid_data_still_arrives(
    ingest_rig: IngestRig, junk: list[bytes]
) -> None:
    seq = next(_valid_seq)
    valid = encode_batch(
        ReadingBatch(
            v=1,
            farm="oax-mixteca",
            agent="pi-1",
            readings=[
                Reading(
                    seq=seq,
                    sensor="probe",
                    kind=SensorKind.SOIL_MOISTURE,
                    ts=1_795_000_000_000 + seq,
                    value=1.5,
                    unit="%",
                    raw=float(seq),
                )
            ],
        )
    )
    topic = readings_topic("oax-mixteca", "pi-1")
    sent = []
    for payload in [*junk[: len(junk) // 2], valid, *junk[len(junk) // 2 :]]:
        mid = next(ingest_rig.mids)
        sent.append(mid)
        ingest_rig.ingestor.submit(Delivery(mid, 1, topic, payload))
    wait_for(lambda: set(sent) <= set(ingest_rig.acked), timeout_s=20, what="every delivery acked")
    rows = ingest_rig.influx.query(f"SELECT raw FROM soil_moisture WHERE seq = {seq}")
    assert [r["raw"] for r in rows] == [float(seq)]
