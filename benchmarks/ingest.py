# mypy: disable-error-code="no-untyped-call"
"""Benchmarks 1–3: collector ingest throughput against the database, paho and a naive bridge.

Every consumer is measured the same way: its persistent session is created (subscribed), it
disconnects, the messages are published at QoS 1 and queued by the broker, then the consumer
reconnects and the clock runs until it has handled them all. So the figure is the consumer's
own rate, not the publisher's.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from influxdb_client.client.write.point import Point
from influxdb_client.domain.write_precision import WritePrecision

from benchmarks.common import (
    COLLECTOR_USER,
    REPO,
    T0_MS,
    Endpoint,
    Stack,
    close,
    publish_all,
    subscribe,
)
from collector.service import Collector, make_consumer
from collector.settings import CollectorSettings
from farmwatch_shared.clock import SystemClock
from farmwatch_shared.contract import (
    READINGS_SUBSCRIPTION,
    UNITS,
    Reading,
    ReadingBatch,
    SensorKind,
    encode_batch,
    readings_topic,
)
from farmwatch_shared.influx import InfluxV1Writer, RetryableWriteError
from farmwatch_shared.lineprotocol import reading_lines
from farmwatch_shared.problems import ProblemLog

FARM = "oax-mixteca"
PASSWORDS_ENV = "FARMWATCH_BENCH_MQTT_PASSWORDS"
"""Broker passwords (JSON) handed to the consumer processes through their environment."""
AGENTS = 50
SENSORS = (
    ("tank-main", SensorKind.WATER_LEVEL),
    ("trough-north", SensorKind.WATER_LEVEL),
    ("soil-20cm", SensorKind.SOIL_MOISTURE),
    ("rain", SensorKind.RAIN),
)


@dataclass(frozen=True)
class Workload:
    """Messages to publish and the readings they hold."""

    messages: list[tuple[str, bytes]]
    batches: list[ReadingBatch]

    @property
    def readings(self) -> int:
        """Readings in all the batches."""
        return sum(len(b.readings) for b in self.batches)


def make_workload(messages: int, per_message: int, compress: bool) -> Workload:
    """Plausible readings of ``AGENTS`` agents of one farm, a minute apart per sensor."""
    batches = []
    seqs = [0] * AGENTS
    for m in range(messages):
        agent_no = m % AGENTS
        readings = []
        for _ in range(per_message):
            seq = seqs[agent_no]
            seqs[agent_no] += 1
            sensor, kind = SENSORS[seq % len(SENSORS)]
            value = round(40.0 + 30.0 * ((seq * 7919) % 1000) / 1000.0, 4)
            volume = round(value * 251.3, 2) if kind is SensorKind.WATER_LEVEL else None
            readings.append(
                Reading(
                    seq=seq,
                    sensor=sensor,
                    kind=kind,
                    ts=T0_MS + (seq // len(SENSORS)) * 60_000,
                    value=value if kind is not SensorKind.RAIN else 0.2,
                    unit=UNITS[kind],
                    raw=round(2300.0 - value * 20.0, 1),
                    volume_l=volume,
                )
            )
        batches.append(ReadingBatch(v=1, farm=FARM, agent=f"pi-{agent_no}", readings=readings))
    return Workload(
        [(readings_topic(b.farm, b.agent), encode_batch(b, compress=compress)) for b in batches],
        batches,
    )


def database_direct(stack: Stack, workload: Workload, batch_points: int = 5000) -> float:
    """Baseline 1: the same points formatted in advance and POSTed in 5k batches (points/s)."""
    _, writer = stack.new_database("direct")
    lines = [line for b in workload.batches for line in reading_lines(b.farm, b.agent, b.readings)]
    started = time.perf_counter()
    for i in range(0, len(lines), batch_points):
        writer.write(lines[i : i + batch_points])
    return len(lines) / (time.perf_counter() - started)


class Consumer:
    """Something that drains the broker's queue for one session."""

    def connect(self) -> None:
        """Connect (creating or resuming the persistent session)."""
        raise NotImplementedError

    def handled(self) -> int:
        """Readings (or messages) fully handled so far."""
        raise NotImplementedError

    def disconnect(self) -> None:
        """Disconnect, keeping the session."""
        raise NotImplementedError


def drain_rate(stack: Stack, kind: str, workload: Workload) -> float:
    """Queue ``workload`` for a fresh persistent session, then time a consumer of ``kind``
    (``collector``, ``counter`` or ``naive``, each in its own process) draining it."""
    client_id = f"bench-{secrets.token_hex(4)}"
    database = stack.new_database(kind)[0] if kind != "counter" else ""
    expected = len(workload.messages) if kind == "counter" else workload.readings
    command = [
        sys.executable,
        "-m",
        "benchmarks.consume",
        kind,
        "setup",
        f"--port={stack.broker.port}",
        f"--influx-url={stack.influx.url}",
        f"--database={database}",
        f"--client-id={client_id}",
        f"--expected={expected}",
        f"--total-readings={workload.readings}",
    ]
    env = {**os.environ, PASSWORDS_ENV: json.dumps(stack.passwords)}
    subprocess.run(command, env=env, check=True, timeout=120, cwd=REPO)
    publish_all(stack.endpoint, FARM, workload.messages)
    command[4] = "drain"
    out = subprocess.run(
        command, env=env, check=True, timeout=600, cwd=REPO, capture_output=True, text=True
    )
    return workload.readings / float(out.stdout.split()[-1])


class CountingSubscriber(Consumer):
    """Baseline 2: a paho subscriber that only counts (QoS 1, paho acknowledges)."""

    def __init__(self, endpoint: Endpoint, client_id: str) -> None:
        self._endpoint = endpoint
        self._client_id = client_id
        self._count = 0
        self._client: paho.Client | None = None

    def connect(self) -> None:
        """Resume the persistent session and subscribe to every farm's readings."""
        client = self._endpoint.client(
            COLLECTOR_USER,
            self._client_id,
            clean_start=False,
            session_expiry_s=3600,
            on_message=self._on_message,
        )
        subscribe(client, READINGS_SUBSCRIPTION)
        self._client = client

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        self._count += 1

    def handled(self) -> int:
        """Messages received."""
        return self._count

    def disconnect(self) -> None:
        """Disconnect, keeping the session."""
        assert self._client is not None
        close(self._client)


class NaiveBridge(CountingSubscriber):
    """Baseline 3: decode each message with ``json``, format each reading with
    ``influxdb_client.Point``, POST synchronously from the callback every 5k points."""

    def __init__(
        self, endpoint: Endpoint, client_id: str, writer: InfluxV1Writer, total: int
    ) -> None:
        super().__init__(endpoint, client_id)
        self._writer = writer
        self._total = total
        self._lines: list[str] = []
        self._received = 0
        self._written = 0

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        body = message.payload
        if body[:1] == b"\x78":
            body = zlib.decompress(body)
        doc = json.loads(body)
        for seq, sensor, kind, ts, value, unit, raw, volume_l, flags in doc["readings"]:
            point = Point(kind)
            point.tag("farm", doc["farm"]).tag("agent", doc["agent"])
            point.tag("sensor", sensor).tag("unit", unit)
            point.field("value", float(value)).field("raw", float(raw))
            point.field("seq", seq).time(ts, WritePrecision.MS)
            if volume_l is not None:
                point.field("volume_l", float(volume_l))
            if flags:
                point.field("flags", flags)
            self._lines.append(point.to_line_protocol())
        self._received += len(doc["readings"])
        if len(self._lines) >= 5000 or self._received >= self._total:
            while True:
                try:
                    self._writer.write(self._lines)
                    break
                except RetryableWriteError:
                    time.sleep(0.5)
            self._written += len(self._lines)
            self._lines = []

    def handled(self) -> int:
        """Readings written to InfluxDB."""
        return self._written


class FarmwatchCollector(Consumer):
    """The real collector (``collector.service.Collector``), acknowledging after the write."""

    def __init__(
        self, endpoint: Endpoint, client_id: str, database: str, probe_subscription: bool
    ) -> None:
        self._settings = CollectorSettings.model_validate(
            {
                "mqtt_host": "127.0.0.1",
                "mqtt_port": endpoint.broker_port,
                "mqtt_username": COLLECTOR_USER,
                "mqtt_password": endpoint.passwords[COLLECTOR_USER],
                "influx_url": endpoint.influx_url,
                "influx_database": database,
                "client_id": client_id,
                "stats_interval_s": 0.2,
            }
        )
        self._endpoint = endpoint
        self._probe_subscription = probe_subscription
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.collector: Collector | None = None

    def connect(self) -> None:
        """Start the collector in a thread; wait until it is connected (and subscribed)."""
        writer = InfluxV1Writer(self._settings.influx_url, self._settings.influx_database)
        problems = ProblemLog(logging.getLogger("bench.collector.problems"))
        consumer = make_consumer(self._settings)
        self.collector = Collector(self._settings, consumer, writer, SystemClock(), problems)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.collector.run, args=(self._stop,))
        self._thread.start()
        if not consumer.wait_connected(10):
            raise RuntimeError("collector did not connect")
        if self._probe_subscription:
            self._wait_subscribed()

    def _wait_subscribed(self) -> None:
        """Publish probes until one is written: the subscription is then in place."""
        assert self.collector is not None
        probe = make_workload(1, 1, compress=False).messages[0]
        stats = self.collector.ingestor.stats
        deadline = time.monotonic() + 10
        while stats.points_written == 0:
            if time.monotonic() > deadline:
                raise RuntimeError("collector never wrote the probe")
            publish_all(self._endpoint, FARM, [probe])
            written_by = time.monotonic() + 1.0
            while stats.points_written == 0 and time.monotonic() < written_by:
                time.sleep(0.01)

    def handled(self) -> int:
        """Points the collector wrote."""
        assert self.collector is not None
        return self.collector.ingestor.stats.points_written

    def disconnect(self) -> None:
        """Stop the collector (its session stays on the broker)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
