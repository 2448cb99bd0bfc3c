"""One message never stops the collector: whatever goes wrong while decoding, validating or
converting a message quarantines that message, and every other farm's readings keep flowing
(issue 11, finding 1), on the real broker with the shipped policy and a real InfluxDB."""

from __future__ import annotations

import time

import paho.mqtt.client as paho
from support.harness import collector_settings, start_collector
from support.servers import Broker, Influx
from support.waiting import wait_for

from farmwatch_shared.contract import (
    Reading,
    ReadingBatch,
    SensorKind,
    encode_batch,
    readings_topic,
    status_topic,
)

NESTED_STATUS = (
    b'{"v":1,"farm":"oax-istmo","agent":"pi-1","state":"online","ts":1795000000000,"x":'
    + b"[" * 1000
    + b"]" * 1000
    + b"}"
)


def rain_batch(farm: str, seq: int) -> bytes:
    now = int(time.time() * 1000)
    reading = Reading(seq, "rain", SensorKind.RAIN, now - 60_000 + seq, 0.2, "mm", float(seq))
    return encode_batch(ReadingBatch(v=1, farm=farm, agent="pi-1", readings=[reading]))


def publish(client: paho.Client, topic: str, payload: bytes, retain: bool = False) -> None:
    info = client.publish(topic, payload, qos=1, retain=retain)
    info.wait_for_publish(10)
    assert info.is_published()


def test_a_retained_deeply_nested_status_does_not_freeze_ingestion_for_all_farms(
    broker: Broker, influx: Influx
) -> None:
    """Finding 1: the status froze the converter thread; it is retained, so it came back after
    every restart. Now it is quarantined, and the other farms' readings (and the same farm's)
    are written, before and after a restart of the collector."""
    istmo = broker.client("oax-istmo", "test-istmo")
    mixteca = broker.client("oax-mixteca", "test-mixteca")
    publish(istmo, status_topic("oax-istmo", "pi-1"), NESTED_STATUS, retain=True)
    settings = collector_settings(broker, influx)
    try:
        for round_ in range(2):  # the retained message is delivered again on every subscribe
            collector = start_collector(settings)
            try:
                publish(
                    mixteca,
                    readings_topic("oax-mixteca", "pi-1"),
                    rain_batch("oax-mixteca", round_),
                )
                publish(istmo, readings_topic("oax-istmo", "pi-1"), rain_batch("oax-istmo", round_))
                expected = 2 * (round_ + 1)
                wait_for(
                    lambda: influx.count("rain") == expected,  # noqa: B023 - waited on at once
                    what="both farms' readings written",
                )
                assert collector.collector.ingestor.stats.by_cause.get("schema", 0) >= 1
            finally:
                collector.stop()
    finally:
        istmo.disconnect()
        mixteca.disconnect()


class ClockFailingOnce:
    """The system clock, except that its first reading raises: an unexpected error in the
    middle of checking the first message."""

    def __init__(self) -> None:
        self._failed = False

    def now_ms(self) -> int:
        if not self._failed:
            self._failed = True
            raise RuntimeError("clock source unavailable")
        return int(time.time() * 1000)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def test_any_exception_while_checking_a_message_quarantines_that_message_only(
    broker: Broker, influx: Influx
) -> None:
    collector = start_collector(collector_settings(broker, influx), clock=ClockFailingOnce())
    farm = broker.client("oax-mixteca", "test-mixteca")
    first, second = rain_batch("oax-mixteca", 1), rain_batch("oax-mixteca", 2)
    try:
        publish(farm, readings_topic("oax-mixteca", "pi-1"), first)
        publish(farm, readings_topic("oax-mixteca", "pi-1"), second)
        wait_for(lambda: influx.count("rain") == 1, what="the second message written")
        (kept,) = collector.quarantine.messages()
        assert (kept.cause, kept.payload) == ("internal_error", first)
        assert "RuntimeError: clock source unavailable" in kept.detail
        assert collector.collector.failed is None
        assert collector.thread.is_alive()
    finally:
        farm.disconnect()
        collector.stop()
