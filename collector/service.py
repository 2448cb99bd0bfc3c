"""The collector service: wires the MQTT consumer, the ingestor and the database writer."""

from __future__ import annotations

import logging
import threading

import msgspec
import paho.mqtt.client as paho

from collector.ingest import Ingestor
from collector.settings import CollectorSettings
from farmwatch_shared.clock import Clock
from farmwatch_shared.contract import (
    DEAD_LETTER_TOPIC,
    READINGS_SUBSCRIPTION,
    STATUS_SUBSCRIPTION,
    DeadLetter,
)
from farmwatch_shared.influx import InfluxV1Writer, InfluxV2Writer, PointWriter
from farmwatch_shared.mqtt import Consumer, MqttConsumer
from farmwatch_shared.problems import ProblemLog

log = logging.getLogger(__name__)
_dead_letter_encoder = msgspec.json.Encoder()
DEAD_LETTER_ATTEMPTS = 200
DEAD_LETTER_RETRY_S = 0.05


def make_writer(settings: CollectorSettings) -> PointWriter:
    """The database output the settings choose."""
    if settings.influx_api == "v2":
        assert settings.influx_token is not None  # checked by the settings validator
        return InfluxV2Writer(
            settings.influx_url, settings.influx_token, settings.influx_org, settings.influx_bucket
        )
    return InfluxV1Writer(
        settings.influx_url,
        settings.influx_database,
        settings.influx_retention_policy,
        settings.influx_username,
        settings.influx_password,
    )


def make_consumer(settings: CollectorSettings) -> MqttConsumer:
    """The collector's persistent MQTT session on every farm's readings and statuses."""
    return MqttConsumer(
        settings.mqtt_endpoint(settings.client_id),
        topic_filters=[READINGS_SUBSCRIPTION, STATUS_SUBSCRIPTION],
        session_expiry_s=settings.session_expiry_s,
        receive_maximum=settings.receive_maximum,
        max_inflight=100,
    )


class Collector:
    """Consumes all farms' messages, writes readings, acknowledges after the write."""

    def __init__(
        self,
        settings: CollectorSettings,
        consumer: Consumer,
        writer: PointWriter,
        clock: Clock,
        problems: ProblemLog,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._problems = problems
        self.consumer = consumer
        self.ingestor = Ingestor(
            writer=writer,
            acknowledge=consumer.ack,
            dead_letter=self._publish_dead_letter,
            clock=clock,
            problems=problems,
            batch_max_points=settings.batch_max_points,
        )

    def _publish_dead_letter(self, letter: DeadLetter) -> None:
        # paho refuses (MQTT_ERR_QUEUE_SIZE) while its queue is full: wait for room a while
        # (this slows intake, which is what a flood of bad input should do) before giving up.
        payload = _dead_letter_encoder.encode(letter)
        for _ in range(DEAD_LETTER_ATTEMPTS):
            info = self.consumer.publish(DEAD_LETTER_TOPIC, payload, qos=1)
            if info.rc in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
                return
            if info.rc != paho.MQTT_ERR_QUEUE_SIZE:
                break
            self._clock.sleep(DEAD_LETTER_RETRY_S)
        self._problems.report("dead_letter_not_queued", f"paho rc={info.rc}: {letter.reason}")

    def run(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set."""
        self.consumer.start(self.ingestor.submit)
        worker = threading.Thread(target=self.ingestor.run, args=(stop,), name="ingest")
        worker.start()
        while not stop.wait(self._settings.stats_interval_s):
            stats = self.ingestor.stats
            log.info(
                "stats: messages=%d points=%d batches=%d retries=%d dead_letters=%d %s",
                stats.messages,
                stats.points_written,
                stats.batches_written,
                stats.write_retries,
                stats.dead_letters,
                stats.by_cause,
            )
        worker.join(10.0)
        self.consumer.stop()
