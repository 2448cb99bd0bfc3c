"""End-to-end delivery on the edge (issue 11 findings 6, 7, 10): a reading leaves the outbox only
when the collector confirms it stored it (``Committed``); a PUBACK saying nobody receives it
releases nothing; batches are cut to fit the broker's packet limit and the contract's size.

The broker runs with the shipped configuration and the delivery ACL of the contract (farms
write readings and status and read their ``committed`` topic, the collector writes
``committed``); the test itself plays the collector's confirming part."""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from pydantic import SecretStr
from support.harness import RunningAgent, start_agent
from support.paths import COLLECTOR_USER, FARMS
from support.servers import Broker
from support.waiting import wait_for

from edge.batching import payload_limit
from edge.outbox import Outbox
from edge.uplink import Confirmation, EventQueue, Puback, Uplink
from edge.urgency import Urgency
from farmwatch_local.services import MosquittoServer
from farmwatch_shared.clock import SystemClock
from farmwatch_shared.contract import (
    MAX_PAYLOAD_BYTES,
    Committed,
    Reading,
    SensorKind,
    committed_topic,
    decode_batch,
    encode_committed,
    readings_topic,
    seq_ranges,
)
from farmwatch_shared.farm.model import SoilMoistureSensor
from farmwatch_shared.mqtt import MqttEndpoint, MqttSession
from farmwatch_shared.problems import ProblemLog

FARM, AGENT = "oax-mixteca", "pi-1"
DELIVERY_ACL = """
user farmwatch-collector
topic read farmwatch/v1/#
topic write farmwatch/v1/+/+/committed
topic readwrite farmwatch/deadletter/#

pattern write farmwatch/v1/%u/+/readings
pattern write farmwatch/v1/%u/+/status
pattern read farmwatch/v1/%u/+/committed
"""
PROBE = SoilMoistureSensor(
    id="probe", agent=AGENT, channel="S1", kind=SensorKind.SOIL_MOISTURE, coefficients=(0, 0.001)
)


@pytest.fixture
def delivery_broker(tmp_path: Path) -> Iterator[Broker]:
    acl = tmp_path / "acl"
    acl.write_text(DELIVERY_ACL)
    passwords = {user: secrets.token_hex(12) for user in (COLLECTOR_USER, *FARMS)}
    server = MosquittoServer(data_dir=tmp_path / "mosquitto", users=passwords, acl_path=acl)
    server.start()
    yield Broker(server, passwords)
    server.stop()


class Collector:
    """Stands in for the collector: receives the agent's batches and, when told, confirms."""

    def __init__(self, broker: Broker) -> None:
        self._watcher = broker.watch(
            readings_topic(FARM, AGENT), f"test-col-{secrets.token_hex(3)}"
        )

    @property
    def payloads(self) -> list[bytes]:
        """The batch payloads received, as they came."""
        return self._watcher.payloads

    def publish(self, topic: str, payload: bytes) -> None:
        """Publish as the collector user (QoS 1, waited for)."""
        self._watcher.client.publish(topic, payload, qos=1).wait_for_publish(10)

    def seqs(self) -> list[int]:
        """Sequence numbers received, in order, resends included."""
        return [r.seq for p in self._watcher.payloads for r in decode_batch(p).readings]

    def confirm(self, seqs: list[int]) -> None:
        committed = Committed(v=1, farm=FARM, agent=AGENT, seqs=seq_ranges(seqs))
        self.publish(committed_topic(FARM, AGENT), encode_committed(committed))

    def close(self) -> None:
        self._watcher.close()


def produce(agent: RunningAgent, count: int) -> None:
    start = agent.outbox.last_seq() + 1
    for i in range(count):
        agent.mcu.sample("S1", float(start + i))
    wait_for(lambda: agent.outbox.last_seq() == start + count - 1, what=f"{count} committed")


def test_a_puback_saying_no_one_subscribed_releases_nothing(
    delivery_broker: Broker, tmp_path: Path
) -> None:
    """Finding 6: no collector session (expired, renamed, lost): PUBACK 0x10."""
    agent = start_agent(delivery_broker, tmp_path, FARM, sensors=[PROBE])
    try:
        wait_for(lambda: agent.transport.session.connected, what="agent connected")
        produce(agent, 5)
        wait_for(lambda: agent.problems.count("publish_not_delivered") >= 1, what="PUBACK 0x10")
        assert agent.outbox.backlog() == 5
        collector = Collector(delivery_broker)  # a collector subscribes again
        wait_for(lambda: set(collector.seqs()) == set(range(5)), what="the 5 readings delivered")
        wait_for(lambda: agent.transport.uplink.readings_acked >= 5, what="PUBACK 0")
        assert agent.outbox.backlog() == 5  # delivered, not yet stored
        collector.confirm(list(range(5)))
        wait_for(lambda: agent.outbox.backlog() == 0, what="released on Committed")
        collector.close()
    finally:
        agent.stop()


def test_readings_are_kept_until_committed_and_resent_when_not(
    delivery_broker: Broker, tmp_path: Path
) -> None:
    """Finding 10: kept after PUBACK, resent after commit_timeout_s, deleted on Committed."""
    collector = Collector(delivery_broker)
    agent = start_agent(delivery_broker, tmp_path, FARM, sensors=[PROBE], commit_timeout_s=1.0)
    try:
        produce(agent, 4)
        wait_for(lambda: sorted(set(collector.seqs())) == [0, 1, 2, 3], what="first send")
        wait_for(lambda: collector.seqs().count(0) >= 2, what="a resend after 1 s unconfirmed")
        assert agent.outbox.backlog() == 4
        collector.confirm([0, 1, 2, 3])
        wait_for(lambda: agent.outbox.backlog() == 0, what="released on Committed")
        assert agent.transport.uplink.readings_committed == 4
        sent = len(collector.seqs())
        threading.Event().wait(2.5)  # two more commit timeouts: nothing is sent again
        assert len(collector.seqs()) == sent
        assert agent.problems.count("committed_schema") == 0
    finally:
        agent.stop()
        collector.close()


def test_readings_sent_but_not_committed_survive_an_agent_restart_and_are_resent(
    delivery_broker: Broker, tmp_path: Path
) -> None:
    collector = Collector(delivery_broker)
    agent = start_agent(delivery_broker, tmp_path, FARM, sensors=[PROBE], commit_timeout_s=1.0)
    try:
        produce(agent, 3)
        wait_for(lambda: agent.transport.uplink.readings_acked == 3, what="delivered")
    finally:
        agent.stop()
    received = len(collector.seqs())
    again = start_agent(delivery_broker, tmp_path, FARM, sensors=[PROBE], commit_timeout_s=1.0)
    try:
        assert again.outbox.backlog() == 3
        wait_for(lambda: len(collector.seqs()) >= received + 3, what="resent after the restart")
        assert set(collector.seqs()[received:]) == {0, 1, 2}
        collector.confirm([0, 1, 2])
        wait_for(lambda: again.outbox.backlog() == 0, what="released on Committed")
    finally:
        again.stop()
        collector.close()


def test_a_broker_that_lost_the_session_gets_everything_unconfirmed_again(
    delivery_broker: Broker, tmp_path: Path
) -> None:
    """A broker SIGKILL before its autosave: the CONNACK says session_present=0, and every
    reading delivered but not confirmed is sent again at once (not after commit_timeout_s)."""
    collector = Collector(delivery_broker)
    agent = start_agent(delivery_broker, tmp_path, FARM, sensors=[PROBE], commit_timeout_s=300)
    try:
        produce(agent, 6)
        wait_for(lambda: agent.transport.uplink.readings_acked == 6, what="delivered")
        collector.close()
        delivery_broker.server.kill()
        delivery_broker.server.start()
        collector = Collector(delivery_broker)
        wait_for(lambda: set(collector.seqs()) == set(range(6)), what="all 6 sent again")
        assert agent.outbox.backlog() == 6
        collector.confirm(list(range(6)))
        wait_for(lambda: agent.outbox.backlog() == 0, what="released on Committed")
    finally:
        agent.stop()
        collector.close()


def test_a_confirmation_that_breaks_the_contract_is_refused_and_the_next_one_works(
    delivery_broker: Broker, tmp_path: Path
) -> None:
    collector = Collector(delivery_broker)
    agent = start_agent(delivery_broker, tmp_path, FARM, sensors=[PROBE])
    try:
        produce(agent, 2)
        wait_for(lambda: agent.transport.uplink.readings_acked == 2, what="delivered")
        topic = committed_topic(FARM, AGENT)
        for junk in (b"[" * 5000, b'{"v":1,"farm":"oax-istmo","agent":"pi-1","seqs":[[0,1]]}'):
            collector.publish(topic, junk)
        collector.confirm([0, 1])
        wait_for(lambda: agent.outbox.backlog() == 0, what="the valid confirmation")
        assert agent.problems.count("committed_topic_mismatch") == 1
        assert agent.thread is not None
        assert agent.thread.is_alive()
    finally:
        agent.stop()
        collector.close()


def big_readings(outbox: Outbox, count: int) -> None:
    for i in range(count):
        outbox.add(
            Reading(
                seq=0,
                sensor="soil-20cm-north-paddock",
                kind=SensorKind.SOIL_MOISTURE,
                ts=1_795_000_000_000 + i * 60_000,
                value=round(12.3456 + (i % 997) / 13, 4),
                unit="%",
                raw=1234.567891 + i / 7,
            )
        )


@pytest.mark.parametrize(("compress", "count"), [(True, 5000), (False, 3000)])
def test_batches_are_cut_by_encoded_size_to_fit_the_broker_and_the_contract(
    delivery_broker: Broker, tmp_path: Path, compress: bool, count: int
) -> None:
    """Finding 7: 5000 compressed readings inflate past MAX_PAYLOAD_BYTES in one batch (the
    collector would dead-letter it), 3000 uncompressed ones exceed the broker's max_packet_size
    (300000: it disconnects the agent, which sent the same message forever)."""
    outbox = Outbox(tmp_path / "outbox.sqlite3", 10_000)
    big_readings(outbox, count)
    events: EventQueue = queue.SimpleQueue()
    password = SecretStr(delivery_broker.passwords[FARM])
    session = MqttSession(
        MqttEndpoint("127.0.0.1", delivery_broker.port, "test-big", FARM, password),
        clean_start=True,
        session_expiry_s=0,
        max_inflight=10,
        on_published=lambda mid, delivered: events.put(Puback(mid, delivered)),
    )
    problems = ProblemLog(logging.getLogger("test.batching"))
    uplink = Uplink(
        farm=FARM,
        agent=AGENT,
        outbox=outbox,
        publisher=session,
        events=events,
        clock=SystemClock(),
        problems=problems,
        batch_max_readings=count,
        batch_max_age_s=0.0,
        compress=compress,
        window=8,
        payload_limit=payload_limit(256 * 1024),
        commit_timeout_s=300.0,
        payload_version=1,
        urgency=Urgency({}),
    )
    collector = Collector(delivery_broker)
    session.start()
    try:

        def step() -> bool:
            uplink.pump()
            return uplink.readings_acked == count

        wait_for(step, timeout_s=60, what=f"{count} readings delivered")
        assert sorted(collector.seqs()) == list(range(count))  # each once, all decodable
        for payload in collector.payloads:
            assert len(payload) <= payload_limit(256 * 1024)
            body = zlib.decompress(payload) if compress else payload
            assert len(body) <= MAX_PAYLOAD_BYTES
            msgspec.json.decode(body)
        assert len(collector.payloads) >= 2
    finally:
        session.stop()
        collector.close()
        outbox.close()


def test_while_the_collector_confirms_nothing_one_overdue_batch_at_a_time_is_sent_again(
    delivery_broker: Broker, tmp_path: Path
) -> None:
    """A collector that receives but does not store (its database is down): resending all of
    the backlog every timeout would only fill the broker's queue; one batch probes, and when
    its confirmation comes the others go at once."""
    outbox = Outbox(tmp_path / "outbox.sqlite3", 100)
    big_readings(outbox, 6)
    events: EventQueue = queue.SimpleQueue()
    password = SecretStr(delivery_broker.passwords[FARM])
    session = MqttSession(
        MqttEndpoint("127.0.0.1", delivery_broker.port, "test-probe", FARM, password),
        clean_start=True,
        session_expiry_s=0,
        max_inflight=10,
        on_connected=lambda s: s.subscribe([committed_topic(FARM, AGENT)]),
        on_message=lambda d: events.put(Confirmation(d.topic, d.payload)),
        on_published=lambda mid, delivered: events.put(Puback(mid, delivered)),
    )
    uplink = Uplink(
        farm=FARM,
        agent=AGENT,
        outbox=outbox,
        publisher=session,
        events=events,
        clock=SystemClock(),
        problems=ProblemLog(logging.getLogger("test.probe")),
        batch_max_readings=2,
        batch_max_age_s=0.0,
        compress=True,
        window=8,
        payload_limit=payload_limit(256 * 1024),
        commit_timeout_s=0.5,
        payload_version=2,
        urgency=Urgency({}),
    )
    collector = Collector(delivery_broker)
    session.start()

    def pump_for(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            uplink.pump()
            time.sleep(0.02)

    try:
        wait_for(lambda: (uplink.pump(), uplink.readings_acked == 6)[1], what="all delivered")
        pump_for(2.5)  # timeouts at 0.5 s, then 1 s, 2 s: only the oldest batch probes
        sends = collector.seqs()
        assert sends.count(0) >= 2
        assert all(sends.count(seq) == 1 for seq in range(2, 6)), sends
        collector.confirm([0, 1])  # the collector stores again
        wait_for(
            lambda: (uplink.pump(), all(collector.seqs().count(s) >= 2 for s in range(2, 6)))[1],
            what="the held-back batches sent at once",
        )
        collector.confirm(list(range(2, 6)))
        wait_for(lambda: (uplink.pump(), outbox.backlog() == 0)[1], what="all released")
    finally:
        session.stop()
        collector.close()
        outbox.close()
