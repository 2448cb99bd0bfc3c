"""Collector: idempotent points on redelivery, dead letters, and the influxdb-client write path."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from pathlib import Path

import msgspec
import paho.mqtt.client as paho
from support.harness import collector_settings, start_collector
from support.servers import Broker, Influx
from support.waiting import wait_for

from farmwatch_local.services import InfluxServer, VictoriaMetricsServer
from farmwatch_shared.contract import (
    DEAD_LETTER_TOPIC,
    DeadLetter,
    Reading,
    ReadingBatch,
    SensorKind,
    encode_batch,
    readings_topic,
)

T0 = 1_795_000_000_000


def batch(farm: str, seqs: range, agent: str = "pi-1") -> ReadingBatch:
    return ReadingBatch(
        v=1,
        farm=farm,
        agent=agent,
        readings=[
            Reading(
                seq=s,
                sensor="trough-north",
                kind=SensorKind.WATER_LEVEL,
                ts=T0 + s * 60_000,
                value=40.0 + s % 50,
                unit="%",
                raw=400.0 - s,
                volume_l=300.0 + s % 50,
            )
            for s in seqs
        ],
    )


def publish(client: paho.Client, topic: str, payload: bytes) -> None:
    info = client.publish(topic, payload, qos=1)
    info.wait_for_publish(10)
    assert info.is_published()


def test_a_redelivered_message_does_not_duplicate_points(broker: Broker, influx: Influx) -> None:
    collector = start_collector(collector_settings(broker, influx))
    farm = broker.client("oax-mixteca", "test-farm-publisher")
    try:
        payload = encode_batch(batch("oax-mixteca", range(5)), compress=True)
        for _ in range(3):  # the same message delivered three times
            publish(farm, readings_topic("oax-mixteca", "pi-1"), payload)
        wait_for(lambda: collector.collector.ingestor.stats.messages >= 3, what="3 deliveries")
        wait_for(lambda: collector.collector.ingestor.stats.points_written >= 15, what="writes")
        assert influx.count("water_level") == 5
        rows = influx.query("SELECT value, seq FROM water_level")
        assert [(r["time"], r["seq"], r["value"]) for r in rows] == [
            (T0 + s * 60_000, s, 40.0 + s) for s in range(5)
        ]
    finally:
        farm.disconnect()
        collector.stop()


def test_invalid_messages_go_to_the_dead_letter_topic_with_a_reason_while_valid_ones_arrive(
    broker: Broker, influx: Influx
) -> None:
    collector = start_collector(collector_settings(broker, influx))
    watcher = broker.watch(DEAD_LETTER_TOPIC, "test-dead-letter-watcher")
    farm = broker.client("oax-mixteca", "test-farm-publisher")
    topic = readings_topic("oax-mixteca", "pi-1")

    def letters() -> list[DeadLetter]:
        return [msgspec.json.decode(p, type=DeadLetter) for p in watcher.payloads]

    try:
        publish(farm, topic, b"{not json")
        publish(farm, topic, encode_batch(batch("oax-mixteca", range(3))))
        publish(farm, topic, json.dumps({"v": 1, "farm": "oax-mixteca"}).encode())
        publish(farm, topic, encode_batch(batch("oax-mixteca", range(3, 6)), compress=True))
        publish(
            farm,
            readings_topic("oax-mixteca", "pi-9"),
            encode_batch(batch("oax-mixteca", range(9, 10))),
        )
        publish(farm, topic, b"\x78\x9c garbage that is not zlib")
        impossible = ReadingBatch(
            v=1,
            farm="oax-mixteca",
            agent="pi-1",
            readings=[
                Reading(
                    seq=6,
                    sensor="soil-20cm",
                    kind=SensorKind.SOIL_MOISTURE,
                    ts=T0,
                    value=130.0,
                    unit="%",
                    raw=1.0,
                ),
                Reading(
                    seq=7,
                    sensor="rain",
                    kind=SensorKind.RAIN,
                    ts=T0,
                    value=0.4,
                    unit="mm",
                    raw=12.0,
                ),
            ],
        )
        publish(farm, topic, encode_batch(impossible))

        wait_for(lambda: len(watcher.payloads) >= 5, what="five dead letters")
        reasons = sorted(letter.reason for letter in letters())
        assert reasons == [
            "bad_compression",
            "impossible_value",
            "malformed",
            "schema",
            "topic_mismatch",
        ]
        malformed = next(letter for letter in letters() if letter.reason == "malformed")
        assert bytes.fromhex(malformed.payload_hex) == b"{not json"
        assert malformed.topic == topic
        impossible_letter = next(
            letter for letter in letters() if letter.reason == "impossible_value"
        )
        assert "seq 6 soil-20cm: value_out_of_range" in impossible_letter.detail

        wait_for(lambda: influx.count("water_level") == 6, what="valid readings")
        wait_for(lambda: influx.count("rain") == 1, what="the plausible reading of a mixed batch")
        assert influx.count("soil_moisture") == 0
        assert collector.collector.ingestor.stats.dead_letters == 5
        assert collector.problems.count("malformed") == 1
    finally:
        farm.disconnect()
        watcher.close()
        collector.stop()


def test_points_refused_by_the_database_are_isolated_and_dead_lettered(
    broker: Broker, influx: Influx
) -> None:
    """A field type conflict (HTTP 400, partial write) refuses one point; its neighbours land."""
    collector = start_collector(collector_settings(broker, influx))
    try:
        # make `raw` an integer field in this database so a float `raw` conflicts
        body = f"rain,agent=pi-1,farm=oax-istmo,sensor=rain,unit=mm raw=1i {T0 - 1}".encode()
        request = urllib.request.Request(
            f"{influx.url}/write?db={influx.database}&precision=ms", data=body, method="POST"
        )
        urllib.request.urlopen(request, timeout=10).close()
        farm = broker.client("oax-istmo", "test-farm-publisher")
        levels = batch("oax-istmo", range(4))
        rain = ReadingBatch(
            v=1,
            farm="oax-istmo",
            agent="pi-1",
            readings=[
                Reading(
                    seq=9, sensor="rain", kind=SensorKind.RAIN, ts=T0, value=0.2, unit="mm", raw=3.0
                )
            ],
        )
        publish(farm, readings_topic("oax-istmo", "pi-1"), encode_batch(levels))
        publish(farm, readings_topic("oax-istmo", "pi-1"), encode_batch(rain))
        wait_for(
            lambda: collector.collector.ingestor.stats.by_cause.get("database_refused") == 1,
            what="refusal",
        )
        wait_for(lambda: influx.count("water_level") == 4, what="the other points")
        farm.disconnect()
    finally:
        collector.stop()


def test_influxdb_client_path_writes_through_api_v2_write_to_a_real_server(
    broker: Broker, influx: Influx, victoria: VictoriaMetricsServer, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("test-token\n")
    settings = collector_settings(
        broker,
        influx,
        influx_api="v2",
        influx_url=victoria.url,
        influx_token_file=token_file,
        influx_org="farmwatch",
        influx_bucket="farmwatch",
    )
    collector = start_collector(settings)
    farm = broker.client("chis-frailesca", "test-farm-publisher")
    try:
        publish(
            farm,
            readings_topic("chis-frailesca", "pi-1"),
            encode_batch(batch("chis-frailesca", range(3)), compress=True),
        )
        query = urllib.parse.urlencode({"match[]": '{__name__="water_level_value"}'})

        def exported() -> list[dict[str, object]]:
            urllib.request.urlopen(f"{victoria.url}/internal/force_flush", timeout=10).close()
            with urllib.request.urlopen(f"{victoria.url}/api/v1/export?{query}", timeout=10) as r:
                return [json.loads(line) for line in r.read().decode().splitlines() if line]

        series = wait_for(exported, what="points in VictoriaMetrics")
        assert len(series) == 1
        (only,) = series
        assert only["metric"] == {
            "__name__": "water_level_value",
            "farm": "chis-frailesca",
            "agent": "pi-1",
            "sensor": "trough-north",
            "unit": "%",
        }
        assert only["values"] == [40.0, 41.0, 42.0]
        assert only["timestamps"] == [T0, T0 + 60_000, T0 + 120_000]
    finally:
        farm.disconnect()
        collector.stop()


def test_while_the_database_is_down_unacknowledged_messages_stay_bounded(
    broker: Broker, tmp_path: Path
) -> None:
    """Backpressure: the broker sends at most Receive Maximum unacknowledged messages; the rest
    wait in the broker (persistently), not in the collector's memory."""
    server = InfluxServer(data_dir=tmp_path / "own-influxdb")
    server.start()
    influx = Influx(server, "backpressure")
    collector = start_collector(collector_settings(broker, influx, receive_maximum=40))
    server.stop()
    farm = broker.client("oax-mixteca", "test-farm-publisher")
    try:
        for start in range(0, 600, 3):
            publish(
                farm,
                readings_topic("oax-mixteca", "pi-1"),
                encode_batch(batch("oax-mixteca", range(start, start + 3))),
            )
        stats = collector.collector.ingestor.stats
        wait_for(lambda: stats.write_retries >= 2, what="the collector retrying")
        time.sleep(1.0)
        assert stats.messages <= 40  # taken from the broker, not yet acknowledged
        server.start()
        wait_for(lambda: influx.count("water_level") == 600, timeout_s=60, what="all 600 readings")
        assert stats.messages == 200
    finally:
        farm.disconnect()
        collector.stop()
        server.stop()


def test_a_flood_of_bad_messages_dead_letters_every_one(broker: Broker, influx: Influx) -> None:
    """More dead letters at once than paho's queue holds: none is dropped on the way out."""
    collector = start_collector(collector_settings(broker, influx))
    watcher = broker.watch(DEAD_LETTER_TOPIC, "test-dead-letter-watcher")
    farm = broker.client("oax-mixteca", "test-farm-publisher")
    try:
        infos = [
            farm.publish(readings_topic("oax-mixteca", "pi-1"), b"junk %d" % i, qos=1)
            for i in range(400)
        ]
        for info in infos:
            info.wait_for_publish(10)
        wait_for(lambda: len(watcher.payloads) == 400, timeout_s=60, what="400 dead letters")
        assert collector.problems.count("dead_letter_not_queued") == 0
    finally:
        farm.disconnect()
        watcher.close()
        collector.stop()


def test_readings_from_1970_or_from_next_week_are_refused(broker: Broker, influx: Influx) -> None:
    """A clock that was never set (1970) or runs days ahead must not write into InfluxDB."""
    collector = start_collector(collector_settings(broker, influx))
    farm = broker.client("oax-mixteca", "test-farm-publisher")
    now = int(time.time() * 1000)
    readings = [
        Reading(
            seq=1, sensor="rain", kind=SensorKind.RAIN, ts=86_400_000, value=0.2, unit="mm", raw=1.0
        ),
        Reading(
            seq=2,
            sensor="rain",
            kind=SensorKind.RAIN,
            ts=now + 7 * 86_400_000,
            value=0.2,
            unit="mm",
            raw=2.0,
        ),
        Reading(
            seq=3,
            sensor="rain",
            kind=SensorKind.RAIN,
            ts=now - 3 * 86_400_000,
            value=0.2,
            unit="mm",
            raw=3.0,
        ),
    ]
    try:
        publish(
            farm,
            readings_topic("oax-mixteca", "pi-1"),
            encode_batch(ReadingBatch(v=1, farm="oax-mixteca", agent="pi-1", readings=readings)),
        )
        wait_for(lambda: influx.count("rain") == 1, what="the reading from three days ago")
        assert [r["seq"] for r in influx.query("SELECT seq, value FROM rain")] == [3]
        stats = collector.collector.ingestor.stats
        assert stats.by_cause == {"impossible_value": 1}
        assert collector.problems.count("impossible_value") == 1
    finally:
        farm.disconnect()
        collector.stop()
