"""The shared MQTT consumer against a real broker: a message stays the consumer's until the
caller acknowledges it, across reconnects of the persistent session."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import SecretStr
from support.paths import COLLECTOR_USER
from support.servers import Broker
from support.waiting import wait_for

from farmwatch_shared.contract import READINGS_SUBSCRIPTION, readings_topic
from farmwatch_shared.mqtt import Delivery, MqttConsumer, MqttEndpoint

TOPIC = readings_topic("oax-mixteca", "pi-1")


@contextmanager
def running_consumer(broker: Broker, received: list[Delivery]) -> Iterator[MqttConsumer]:
    """The same persistent session each time (one client id), started and stopped."""
    consumer = MqttConsumer(
        MqttEndpoint(
            "127.0.0.1",
            broker.port,
            "test-consumer",
            COLLECTOR_USER,
            SecretStr(broker.passwords[COLLECTOR_USER]),
        ),
        topic_filters=[READINGS_SUBSCRIPTION],
        session_expiry_s=600,
        receive_maximum=10,
        max_inflight=10,
    )
    consumer.start(received.append)
    try:
        assert consumer.wait_connected(10)
        assert consumer.subscribed.wait(10)
        yield consumer
    finally:
        consumer.stop()


def publish(broker: Broker, payload: bytes) -> None:
    client = broker.client("oax-mixteca", "test-farm-publisher")
    try:
        client.publish(TOPIC, payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def test_an_unacknowledged_delivery_comes_back_and_an_acknowledged_one_does_not(
    broker: Broker,
) -> None:
    first: list[Delivery] = []
    with running_consumer(broker, first):
        publish(broker, b"one")
        wait_for(lambda: first, what="the delivery")
    assert [(d.topic, d.payload, d.qos) for d in first] == [(TOPIC, b"one", 1)]

    again: list[Delivery] = []
    with running_consumer(broker, again) as consumer:
        wait_for(lambda: again, what="the redelivery of the unacknowledged message")
        assert [d.payload for d in again] == [b"one"]
        consumer.ack(again[0])

    last: list[Delivery] = []
    with running_consumer(broker, last):
        publish(broker, b"two")
        wait_for(lambda: last, what="the new message")
    assert [d.payload for d in last] == [b"two"]
