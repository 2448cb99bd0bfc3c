"""Property-based: whatever arrives on the collector's topics (readings, status, and a
confirmation topic it does not consume), no exception escapes its ingestor, every refused
message is quarantined whole, and the valid message sent among the garbage is still written,
confirmed to its agent and acknowledged (issue 11: MQTT payloads of every topic)."""

from __future__ import annotations

import itertools
import json
import logging
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.servers import Influx
from support.waiting import wait_for

from collector.ingest import Ingestor
from collector.quarantine import QuarantineStore
from farmwatch_local.services import InfluxServer
from farmwatch_shared.clock import SystemClock
from farmwatch_shared.contract import (
    AgentStatus,
    Committed,
    ContractError,
    DeadLetter,
    Reading,
    ReadingBatch,
    SensorKind,
    committed_topic,
    decode_message,
    encode_batch,
    encode_committed,
    encode_status,
    readings_topic,
    status_topic,
)
from farmwatch_shared.influx import InfluxV1Writer
from farmwatch_shared.mqtt import Delivery
from farmwatch_shared.problems import ProblemLog
from farmwatch_shared.supervisor import Supervisor

FARM, AGENT = "oax-mixteca", "pi-1"
T0 = 1_795_000_000_000
TOPICS = [readings_topic(FARM, AGENT), status_topic(FARM, AGENT), committed_topic(FARM, AGENT)]


@dataclass
class IngestRig:
    """A real Ingestor writing to the real InfluxDB, with a real quarantine file."""

    ingestor: Ingestor
    influx: Influx
    quarantine: QuarantineStore
    acked: list[int] = field(default_factory=list)
    letters: list[DeadLetter] = field(default_factory=list)
    confirmed: list[Committed] = field(default_factory=list)
    mids: Iterator[int] = field(default_factory=itertools.count)


@pytest.fixture(scope="module")
def ingest_rig(
    influx_server: InfluxServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IngestRig]:
    influx = Influx(influx_server, "property_ingest")
    writer = InfluxV1Writer(influx.url, influx.database)
    writer.ensure_database()
    quarantine = QuarantineStore(tmp_path_factory.mktemp("quarantine") / "q.sqlite3", 1 << 30)
    acked: list[int] = []
    letters: list[DeadLetter] = []
    confirmed: list[Committed] = []
    ingestor = Ingestor(
        writer=writer,
        acknowledge=lambda delivery: acked.append(delivery.mid),
        quarantine=quarantine,
        dead_letter=letters.append,
        confirm=confirmed.append,
        farms=[FARM],
        clock=SystemClock(),
        problems=ProblemLog(logging.getLogger("test.property.ingest")),
    )
    stop = threading.Event()
    supervisor = Supervisor("test-ingest", stop, logging.getLogger("test.property.supervisor"))
    ingestor.start(supervisor)
    yield IngestRig(ingestor, influx, quarantine, acked, letters, confirmed)
    assert supervisor.failed is None
    stop.set()
    supervisor.join(5)
    quarantine.close()


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


VALID_SHAPES = [
    encode_batch(
        ReadingBatch(
            v=1,
            farm=FARM,
            agent=AGENT,
            readings=[
                Reading(s, "rain", SensorKind.RAIN, T0 + s, 0.2, "mm", 3.0) for s in range(5)
            ],
        )
    ),
    encode_status(AgentStatus(v=1, farm=FARM, agent=AGENT, state="online", ts=T0)),
    encode_committed(Committed(v=1, farm=FARM, agent=AGENT, seqs=[(1, 3)])),
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=30,
)


@st.composite
def hostile(draw: st.DrawFn) -> bytes:
    """Random bytes and JSON, and the contract's own shapes taken apart: nested deep in an
    unknown or a known field, fields replaced by random JSON, truncated, compressed and cut."""
    base = draw(st.sampled_from(VALID_SHAPES))
    choice = draw(st.integers(min_value=0, max_value=6))
    if choice == 0:
        payload = draw(st.binary(max_size=400))
    elif choice == 1:
        payload = json.dumps(draw(json_values)).encode()
    elif choice == 2:
        document = json.loads(base)
        document[draw(st.sampled_from([*sorted(document), "x"]))] = "@"
        depth = draw(st.sampled_from([10, 999, 1000, 1001, 5000]))
        payload = json.dumps(document).encode().replace(b'"@"', nested(depth))
    elif choice == 3:
        document = json.loads(base)
        document[draw(st.sampled_from(sorted(document)))] = draw(json_values)
        payload = json.dumps(document).encode()
    elif choice == 4:
        payload = base[: draw(st.integers(min_value=0, max_value=len(base) - 1))]
    elif choice == 5:
        payload = nested(draw(st.sampled_from([1, 1000, 50_000])))
    else:
        document = json.loads(base)
        document["farm"] = draw(st.sampled_from(["oax-istmo", "Not An Id", ""]))
        payload = json.dumps(document).encode()
    if draw(st.booleans()):
        stream = zlib.compress(payload)
        payload = stream[: len(stream) - draw(st.integers(min_value=0, max_value=6))]
    return payload


def refused_by_contract(topic: str, payload: bytes) -> bool:
    try:
        decode_message(topic, payload)
    except ContractError:
        return True
    return topic.endswith("/committed")  # a valid confirmation is still not the collector's


_valid_seq = itertools.count(1000)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(junk=st.lists(st.tuples(st.sampled_from(TOPICS), hostile()), min_size=1, max_size=6))
def test_hostile_payloads_on_every_topic_are_quarantined_and_valid_data_still_arrives(
    ingest_rig: IngestRig, junk: list[tuple[str, bytes]]
) -> None:
    seq = next(_valid_seq)
    reading = Reading(seq, "probe", SensorKind.SOIL_MOISTURE, T0 + seq, 1.5, "%", float(seq))
    valid = (
        readings_topic(FARM, AGENT),
        encode_batch(ReadingBatch(v=1, farm=FARM, agent=AGENT, readings=[reading])),
    )
    sent = []
    for topic, payload in [*junk[: len(junk) // 2], valid, *junk[len(junk) // 2 :]]:
        mid = next(ingest_rig.mids)
        sent.append(mid)
        ingest_rig.ingestor.submit(Delivery(mid, 1, topic, payload))
    wait_for(lambda: set(sent) <= set(ingest_rig.acked), timeout_s=20, what="every delivery acked")
    rows = ingest_rig.influx.query(f"SELECT raw FROM soil_moisture WHERE seq = {seq}")
    assert [r["raw"] for r in rows] == [float(seq)]
    assert any(
        c.agent == AGENT and any(a <= seq <= b for a, b in c.seqs) for c in ingest_rig.confirmed
    )
    quarantined = {(m.topic, m.payload) for m in ingest_rig.quarantine.messages()}
    for topic, payload in junk:
        if refused_by_contract(topic, payload):
            assert (topic, payload) in quarantined
    assert valid not in quarantined
