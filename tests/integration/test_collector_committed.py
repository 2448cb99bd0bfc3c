"""The collector's side of end-to-end delivery (issue 11, finding 10): it confirms an agent's
readings (``Committed`` on the agent's own topic, QoS 1) only after the database accepted them,
one confirmation per agent per write; and status points are idempotent (finding 17)."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import msgspec
import paho.mqtt.client as paho
from support.harness import collector_settings, start_collector
from support.servers import Broker, Influx
from support.waiting import wait_for

from farmwatch_local.services import InfluxServer
from farmwatch_shared.contract import (
    AgentStatus,
    Committed,
    Reading,
    ReadingBatch,
    SensorKind,
    encode_batch,
    encode_status,
    readings_topic,
    status_topic,
)


def rain(farm: str, agent: str, seqs: range) -> bytes:
    now = int(time.time() * 1000)
    readings = [
        Reading(s, "rain", SensorKind.RAIN, now - 3_600_000 + s, 0.2, "mm", float(s)) for s in seqs
    ]
    return encode_batch(ReadingBatch(v=1, farm=farm, agent=agent, readings=readings))


def publish(client: paho.Client, topic: str, payload: bytes, retain: bool = False) -> None:
    info = client.publish(topic, payload, qos=1, retain=retain)
    info.wait_for_publish(10)
    assert info.is_published()


def decoded(payloads: list[bytes]) -> list[Committed]:
    return [msgspec.json.decode(p, type=Committed) for p in payloads]


def seqs_of(confirmations: list[Committed], agent: str) -> set[int]:
    return {
        s
        for c in confirmations
        if c.agent == agent
        for first, last in c.seqs
        for s in range(first, last + 1)
    }


def test_readings_are_confirmed_to_their_agent_after_they_are_written(
    broker: Broker, influx: Influx
) -> None:
    collector = start_collector(collector_settings(broker, influx))
    agent = broker.watch("farmwatch/v1/oax-mixteca/+/committed", "test-agent", user="oax-mixteca")
    farm = broker.client("oax-mixteca", "test-farm")
    written_when_confirmed: list[int] = []

    def on_confirmation(client: object, userdata: object, message: paho.MQTTMessage) -> None:
        written_when_confirmed.append(influx.count("rain"))
        agent.payloads.append(bytes(message.payload))

    agent.client.on_message = on_confirmation
    try:
        publish(farm, readings_topic("oax-mixteca", "pi-1"), rain("oax-mixteca", "pi-1", range(10)))
        wait_for(lambda: agent.payloads, what="the first confirmation")
        assert written_when_confirmed[0] >= 10  # the readings were in the database first
        publish(
            farm, readings_topic("oax-mixteca", "pi-1"), rain("oax-mixteca", "pi-1", range(30, 35))
        )
        publish(farm, readings_topic("oax-mixteca", "pi-2"), rain("oax-mixteca", "pi-2", range(3)))
        wait_for(
            lambda: seqs_of(decoded(agent.payloads), "pi-2") == {0, 1, 2},
            what="pi-2's confirmation",
        )
        wait_for(
            lambda: seqs_of(decoded(agent.payloads), "pi-1") == {*range(10), *range(30, 35)},
            what="pi-1's confirmations",
        )
        assert all(c.farm == "oax-mixteca" for c in decoded(agent.payloads))
    finally:
        farm.disconnect()
        agent.close()
        collector.stop()


def test_nothing_is_confirmed_while_the_database_is_down_then_one_confirmation_per_write(
    broker: Broker, tmp_path: Path
) -> None:
    server = InfluxServer(data_dir=tmp_path / "own-influxdb")
    server.start()
    influx = Influx(server, "confirm_after_write")
    collector = start_collector(collector_settings(broker, influx))
    agent = broker.watch("farmwatch/v1/oax-istmo/+/committed", "test-agent", user="oax-istmo")
    farm = broker.client("oax-istmo", "test-farm")
    server.stop()
    try:
        for start in range(0, 50, 10):
            publish(
                farm,
                readings_topic("oax-istmo", "pi-1"),
                rain("oax-istmo", "pi-1", range(start, start + 10)),
            )
        stats = collector.collector.ingestor.stats
        wait_for(lambda: stats.write_retries >= 2, what="the collector retrying")
        time.sleep(1.0)
        assert agent.payloads == []  # nothing stored, nothing confirmed
        server.start()
        wait_for(lambda: seqs_of(decoded(agent.payloads), "pi-1") == set(range(50)), what="all")
        assert influx.count("rain") == 50
        # the messages waiting during the outage were written (and confirmed) together
        assert len(agent.payloads) < 5
    finally:
        farm.disconnect()
        agent.close()
        collector.stop()
        server.stop()


def test_a_retained_last_will_is_one_status_point_however_often_the_collector_resubscribes(
    broker: Broker, influx: Influx
) -> None:
    """Finding 17: the last will carries no ``ts``; stamped with the collector's time at every
    delivery, the retained copy added another "offline" point at each (re)subscribe."""
    settings = collector_settings(broker, influx)
    farm = broker.client("oax-mixteca", "test-farm")
    will = encode_status(AgentStatus(v=1, farm="oax-mixteca", agent="pi-1", state="offline"))
    online = AgentStatus(
        v=1, farm="oax-mixteca", agent="pi-2", state="online", ts=1_795_000_000_000
    )
    try:
        collector = start_collector(settings)
        try:  # the agent vanishes while the collector listens: the will arrives live, once
            publish(farm, status_topic("oax-mixteca", "pi-1"), will, retain=True)
            publish(farm, status_topic("oax-mixteca", "pi-2"), encode_status(online), retain=True)
            wait_for(lambda: len(influx.query("SELECT * FROM agent_status")) == 2, what="statuses")
        finally:
            collector.stop()
        for _ in range(2):  # restarts: the broker replays both retained statuses each time
            collector = start_collector(settings)
            try:
                stats = collector.collector.ingestor.stats
                wait_for(partial(_at_least, stats, "messages", 2), what="the retained statuses")
                wait_for(
                    partial(_at_least, stats, "batches_written", 1), what="pi-2's status rewritten"
                )
            finally:
                collector.stop()
        rows = influx.query('SELECT "online" FROM agent_status GROUP BY "agent"')
        assert sorted((r["agent"], r["online"]) for r in rows) == [("pi-1", False), ("pi-2", True)]
    finally:
        farm.disconnect()


def _at_least(stats: object, counter: str, count: int) -> bool:
    return int(getattr(stats, counter)) >= count
