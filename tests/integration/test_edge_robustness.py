"""Edge agent under bad conditions: full outbox, vanishing serial device, a full paho queue."""

from __future__ import annotations

import logging
import queue
from pathlib import Path

import msgspec
from pydantic import SecretStr
from support.clocks import FrozenClock
from support.harness import collector_settings, start_agent, start_collector
from support.sensors import PROBE
from support.servers import Broker, Influx
from support.waiting import wait_for

from edge.batching import payload_limit
from edge.outbox import Outbox
from edge.uplink import EventQueue, Puback, Uplink
from edge.urgency import Urgency
from farmwatch_shared.contract import AgentStatus, Reading, SensorKind, status_topic
from farmwatch_shared.mqtt import MqttEndpoint, MqttSession
from farmwatch_shared.problems import ProblemLog


def test_outbox_bound_drops_the_oldest_counts_them_and_reports_them_in_the_status(
    broker: Broker, influx: Influx, tmp_path: Path
) -> None:
    collector = start_collector(collector_settings(broker, influx))
    agent = start_agent(broker, tmp_path, "oax-mixteca", sensors=[PROBE], outbox_max=20)
    try:
        wait_for(lambda: agent.transport.session.connected, what="agent connected")
        broker.server.stop()
        wait_for(lambda: not agent.transport.session.connected, what="agent noticed the outage")
        for i in range(50):
            agent.mcu.sample("S1", float(i))
        wait_for(lambda: agent.outbox.last_seq() == 49, what="50 readings committed")
        assert agent.outbox.backlog() == 20
        assert agent.outbox.dropped_total() == 30
        broker.server.start()

        watcher = broker.watch(status_topic("oax-mixteca", "pi-1"), "test-status-watcher")

        def reported_drops() -> bool:
            statuses = [msgspec.json.decode(p, type=AgentStatus) for p in watcher.payloads]
            return any(s.dropped_total == 30 and s.outbox_backlog == 0 for s in statuses)

        wait_for(lambda: influx.count("soil_moisture") == 20, what="the 20 kept readings")
        wait_for(reported_drops, what="status reporting 30 dropped readings, backlog 0")
        rows = influx.query("SELECT raw, seq FROM soil_moisture")
        assert sorted(r["raw"] for r in rows) == [float(i) for i in range(30, 50)]
        assert sorted(r["seq"] for r in rows) == list(range(30, 50))  # the gap shows the loss
        watcher.close()
    finally:
        agent.stop()
        collector.stop()


def test_the_serial_device_vanishes_and_reappears_and_the_agent_recovers_alone(
    broker: Broker, influx: Influx, tmp_path: Path
) -> None:
    collector = start_collector(collector_settings(broker, influx))
    agent = start_agent(
        broker, tmp_path, "oax-mixteca", sensors=[PROBE], link_path=tmp_path / "ttyUSB-by-id"
    )
    try:
        for i in range(5):
            agent.mcu.sample("S1", float(i))
        wait_for(lambda: agent.outbox.last_seq() == 4, what="first readings")
        syncs = agent.mcu.syncs_received
        agent.link.unplug()  # USB cable pulled: the tty disappears
        for i in range(5, 10):
            agent.mcu.sample("S1", float(i))  # sampled while unplugged: kept by the MCU
        wait_for(lambda: agent.problems.count("serial_lost") >= 1, what="loss noticed")
        agent.link.plug()  # re-enumerated: a new tty behind the same by-id link
        for i in range(10, 15):
            agent.mcu.sample("S1", float(i))
        wait_for(lambda: agent.mcu.syncs_received > syncs, what="agent reopened the port")
        wait_for(lambda: influx.count("soil_moisture") == 15, what="all 15 readings")
        rows = influx.query("SELECT raw FROM soil_moisture")
        assert sorted(r["raw"] for r in rows) == [float(i) for i in range(15)]
        assert agent.source.reopen_count >= 2
        assert agent.thread is not None
        assert agent.thread.is_alive()
    finally:
        agent.stop()
        collector.stop()


def test_a_publish_refused_by_a_full_paho_queue_is_not_lost(broker: Broker, tmp_path: Path) -> None:
    """paho 2.x returns MQTT_ERR_QUEUE_SIZE (no exception) when its queue is full: the uplink
    must notice, keep the readings, and send them later. The test drives paho's network loop
    itself, so no PUBACK can free the queue before the uplink has filled it."""
    outbox = Outbox(tmp_path / "outbox.sqlite3", 1000)
    clock = FrozenClock(1_795_000_000_000)
    for i in range(40):
        outbox.add(
            Reading(
                seq=0,
                sensor="probe",
                kind=SensorKind.SOIL_MOISTURE,
                ts=clock.now + i,
                value=0.0,
                unit="%",
                raw=float(i),
            )
        )
    events: EventQueue = queue.SimpleQueue()

    def on_published(mid: int, delivered: bool) -> None:
        events.put(Puback(mid, delivered))

    endpoint = MqttEndpoint(
        "127.0.0.1",
        broker.port,
        "test-uplink",
        "oax-mixteca",
        SecretStr(broker.passwords["oax-mixteca"]),
    )
    session = MqttSession(
        endpoint,
        clean_start=True,
        session_expiry_s=0,
        max_inflight=1,
        max_queued=3,  # a tiny paho queue
        on_published=on_published,
    )
    problems = ProblemLog(logging.getLogger("test.uplink"))
    uplink = Uplink(
        farm="oax-mixteca",
        agent="pi-1",
        outbox=outbox,
        publisher=session,
        events=events,
        clock=clock,
        problems=problems,
        batch_max_readings=2,
        batch_max_age_s=0.0,
        compress=True,
        window=10,
        payload_limit=payload_limit(256 * 1024),
        commit_timeout_s=300.0,
        payload_version=1,
        urgency=Urgency({}),
    )
    watcher = broker.watch("farmwatch/v1/oax-mixteca/pi-1/readings", "test-uplink-watcher")
    try:
        assert session.connect_once()
        wait_for(lambda: (session.loop_once(0.05), session.connected)[1], what="CONNACK")
        uplink.pump()
        assert problems.count("publish_not_queued") == 1  # paho said no; nothing advanced
        assert uplink.inflight == 3

        def step() -> bool:
            session.loop_once(0.02)
            uplink.pump()
            return uplink.readings_acked == 40

        wait_for(step, what="every reading acknowledged")
        # delivered, not yet confirmed stored: all kept in the outbox, marked sent
        assert outbox.backlog() == 40
        assert outbox.sent_ranges() == [(0, 39)]
        wait_for(lambda: len(watcher.payloads) == 20, what="20 batches of 2 at the subscriber")
    finally:
        session.stop()
        watcher.close()
        outbox.close()
