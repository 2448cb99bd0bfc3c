"""The collector service: wires the MQTT consumer, the ingestor and the database writer."""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection

import msgspec
import paho.mqtt.client as paho

from collector.ingest import Ingestor
from collector.quarantine import QuarantineStore
from collector.settings import CollectorSettings
from farmwatch_shared.clock import Clock
from farmwatch_shared.contract import (
    DEAD_LETTER_TOPIC,
    READINGS_SUBSCRIPTION,
    STATUS_SUBSCRIPTION,
    Committed,
    DeadLetter,
    committed_topic,
    encode_committed,
)
from farmwatch_shared.influx import InfluxV1Writer, InfluxV2Writer, PointWriter
from farmwatch_shared.mqtt import Consumer, MqttConsumer
from farmwatch_shared.problems import ProblemLog
from farmwatch_shared.supervisor import Supervisor

log = logging.getLogger(__name__)
_encoder = msgspec.json.Encoder()
PUBLISH_ATTEMPTS = 200
PUBLISH_RETRY_S = 0.05


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
    """Consumes all farms' messages, writes readings, confirms and acknowledges after the write.

    Its workers (the ingest converter and writer) run under one ``Supervisor``: if one dies,
    the collector stops and ``failed`` says why (the CLI then exits with ``EX_SOFTWARE``)."""

    def __init__(
        self,
        settings: CollectorSettings,
        *,
        consumer: Consumer,
        writer: PointWriter,
        quarantine: QuarantineStore,
        farms: Collection[str],
        clock: Clock,
        problems: ProblemLog,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._problems = problems
        self._failed: str | None = None
        self.consumer = consumer
        self.ingestor = Ingestor(
            writer=writer,
            acknowledge=consumer.ack,
            quarantine=quarantine,
            dead_letter=self._publish_dead_letter,
            confirm=self._publish_committed,
            farms=farms,
            clock=clock,
            problems=problems,
            batch_max_points=settings.batch_max_points,
        )

    @property
    def failed(self) -> str | None:
        """Which worker died and why, once ``run`` returned after a death; else None."""
        return self._failed

    def _publish_dead_letter(self, letter: DeadLetter) -> None:
        self._publish(DEAD_LETTER_TOPIC, _encoder.encode(letter), "dead_letter", letter.reason)

    def _publish_committed(self, committed: Committed) -> None:
        # losing one costs a resend by the agent (idempotent), never a reading
        topic = committed_topic(committed.farm, committed.agent)
        self._publish(topic, encode_committed(committed), "committed", topic)

    def _publish(self, topic: str, payload: bytes, what: str, detail: str) -> None:
        # paho refuses (MQTT_ERR_QUEUE_SIZE) while its queue is full: wait for room a while
        # (this slows intake, which is what a flood of bad input should do) before giving up.
        for _ in range(PUBLISH_ATTEMPTS):
            info = self.consumer.publish(topic, payload, qos=1)
            if info.rc in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
                return
            if info.rc != paho.MQTT_ERR_QUEUE_SIZE:
                break
            self._clock.sleep(PUBLISH_RETRY_S)
        self._problems.report(f"{what}_not_queued", f"paho rc={info.rc}: {detail}")

    def run(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set, or until a worker dies (``failed`` then says which)."""
        supervisor = Supervisor("farmwatch-collector", stop, log)
        self.consumer.start(self.ingestor.submit)
        self.ingestor.start(supervisor)
        while not stop.wait(self._settings.stats_interval_s):
            stats = self.ingestor.stats
            log.info(
                "stats: messages=%d points=%d batches=%d retries=%d refused=%d quarantined=%d "
                "confirmations=%d %s",
                stats.messages,
                stats.points_written,
                stats.batches_written,
                stats.write_retries,
                stats.dead_letters,
                stats.quarantined,
                stats.confirmations,
                stats.by_cause,
            )
        supervisor.join(10.0)
        self.consumer.stop()
        self._failed = supervisor.failed


def make_quarantine(settings: CollectorSettings) -> QuarantineStore:
    """The durable quarantine the settings name."""
    return QuarantineStore(settings.quarantine_path, settings.quarantine_max_mb * 1024 * 1024)
