"""The hub uplink's bookkeeping (issue 15): a reading leaves the outbox only on the stream's
acknowledgement, a batch sent again keeps its ``Nats-Msg-Id``, and a refused publish keeps the
readings and is reported as refused. The publisher is a stand-in answering with futures the
test resolves (what the link does with the stream's answers)."""

from __future__ import annotations

import concurrent.futures
import logging
import queue
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support.clocks import SteppingClock

from edge.outbox import Outbox
from edge.uplink_jetstream import HubEvent, JetStreamUplink, Refused
from edge.urgency import Urgency
from farmwatch_shared.contract import Reading, SensorKind, decode_batch
from farmwatch_shared.problems import ProblemLog

T0 = 1_795_000_000_000


@dataclass
class Sent:
    subject: str
    payload: bytes
    msg_id: str | None
    future: concurrent.futures.Future[bool] = field(default_factory=concurrent.futures.Future)


@dataclass
class StandInPublisher:
    connected: bool = True
    sent: list[Sent] = field(default_factory=list)

    def publish(
        self, subject: str, payload: bytes, msg_id: str | None
    ) -> concurrent.futures.Future[bool]:
        self.sent.append(Sent(subject, payload, msg_id))
        return self.sent[-1].future


@dataclass
class Rig:
    uplink: JetStreamUplink
    outbox: Outbox
    publisher: StandInPublisher
    events: queue.SimpleQueue[HubEvent]
    clock: SteppingClock
    problems: ProblemLog

    def add(self, count: int) -> None:
        for i in range(count):
            reading = Reading(
                seq=0,
                sensor="probe",
                kind=SensorKind.SOIL_MOISTURE,
                ts=self.clock.now,
                value=30.0,
                unit="%",
                raw=float(i),
            )
            self.outbox.add(reading)


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    clock = SteppingClock(T0)
    outbox = Outbox(tmp_path / "outbox.sqlite3", 1000)
    publisher = StandInPublisher()
    events: queue.SimpleQueue[HubEvent] = queue.SimpleQueue()
    problems = ProblemLog(logging.getLogger("test.uplink"))
    uplink = JetStreamUplink(
        farm="oax-mixteca",
        agent="pi-1",
        outbox=outbox,
        publisher=publisher,
        events=events,
        wake=lambda: None,
        clock=clock,
        problems=problems,
        batch_max_readings=10,
        batch_max_age_s=1.0,
        compress=True,
        window=2,
        payload_limit=200_000,
        payload_version=2,
        urgency=Urgency({}),
    )
    return Rig(uplink, outbox, publisher, events, clock, problems)


def test_readings_leave_the_outbox_only_on_the_streams_acknowledgement(rig: Rig) -> None:
    rig.add(25)
    assert rig.uplink.pump()
    assert [s.msg_id for s in rig.publisher.sent] == [
        "oax-mixteca.pi-1.0-9",
        "oax-mixteca.pi-1.10-19",
    ]
    assert rig.publisher.sent[0].subject == "farmwatch.v1.oax-mixteca.pi-1.readings"
    assert [r.seq for r in decode_batch(rig.publisher.sent[1].payload).readings] == list(
        range(10, 20)
    )
    assert rig.outbox.backlog() == 25  # published is not stored
    rig.publisher.sent[1].future.set_result(False)
    rig.uplink.pump()
    assert rig.outbox.backlog() == 15
    assert [r.seq for r in rig.outbox.after(-1, 100)][:10] == list(range(10))
    assert rig.uplink.readings_committed == 10


def test_a_batch_not_acknowledged_goes_again_with_the_same_id(rig: Rig) -> None:
    rig.add(10)
    rig.uplink.pump()
    rig.publisher.sent[0].future.set_exception(TimeoutError("no ack"))
    rig.uplink.pump()  # the failure is taken in; the batch waits a pause
    assert rig.problems.count("publish_not_acked") == 1
    assert len(rig.publisher.sent) == 1
    rig.clock.now += 61_000
    rig.uplink.pump()
    assert [s.msg_id for s in rig.publisher.sent] == ["oax-mixteca.pi-1.0-9"] * 2
    rig.publisher.sent[1].future.set_result(True)  # the first had been stored after all
    rig.uplink.pump()
    assert rig.outbox.backlog() == 0
    assert rig.uplink.duplicates == 1


def test_a_refused_publish_keeps_the_readings_and_is_reported(rig: Rig) -> None:
    rig.add(20)
    rig.uplink.pump()
    assert len(rig.publisher.sent) == 2
    rig.events.put(Refused("farmwatch.v1.oax-mixteca.pi-1.readings"))
    rig.uplink.pump()
    assert rig.uplink.refused
    assert rig.uplink.refusals == 1
    assert rig.problems.count("publish_refused") == 1
    assert rig.outbox.backlog() == 20
    for sent in rig.publisher.sent:  # their timeouts come later: nothing more happens
        sent.future.set_exception(TimeoutError("no ack"))
    rig.uplink.pump()
    assert rig.problems.count("publish_not_acked") == 0
    assert len(rig.publisher.sent) == 2  # paused
    rig.clock.now += 301_000
    rig.uplink.pump()
    assert len(rig.publisher.sent) == 3  # one probe at a time
    rig.publisher.sent[2].future.set_result(False)
    rig.uplink.pump()
    assert not rig.uplink.refused
    assert len(rig.publisher.sent) == 4  # the window opens again
    assert rig.outbox.backlog() == 10


def test_another_subjects_refusal_is_not_ours(rig: Rig) -> None:
    rig.add(10)
    rig.uplink.pump()
    rig.events.put(Refused("$kv.farmwatch_presence.oax-mixteca.pi-1"))
    rig.uplink.pump()
    assert not rig.uplink.refused
    assert rig.uplink.inflight == 1


def test_nothing_is_published_while_disconnected(rig: Rig) -> None:
    rig.add(10)
    rig.publisher.connected = False
    rig.uplink.pump()
    assert rig.publisher.sent == []
