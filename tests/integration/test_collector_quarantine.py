"""Nothing the collector refuses is lost: the whole message goes to the durable quarantine
before it is acknowledged and confirmed, and ``--replay-quarantine`` stores it once the cause is
gone (issue 11, finding 5); farms outside the farm directory are quarantined, not stored
(finding 22); payload limits agree with the broker's (finding 7). Real broker, real InfluxDB.
"""

from __future__ import annotations

import re
import time
import zlib

import msgspec
import paho.mqtt.client as paho
import pytest
from support.clocks import FrozenClock
from support.harness import collector_settings, start_collector
from support.paths import ALERTS_USER
from support.servers import Broker, Influx
from support.waiting import wait_for

from collector.cli import main
from collector.settings import CollectorSettings
from farmwatch_local.services import SHIPPED_BROKER_CONF
from farmwatch_shared.contract import (
    DEAD_LETTER_TOPIC,
    MAX_PAYLOAD_BYTES,
    Committed,
    DeadLetter,
    Reading,
    ReadingBatch,
    SensorKind,
    committed_topic,
    encode_batch,
    readings_topic,
)

DAY_MS = 86_400_000


def levels(farm: str, seqs: range, ts0: int, agent: str = "pi-1") -> ReadingBatch:
    return ReadingBatch(
        v=1,
        farm=farm,
        agent=agent,
        readings=[
            Reading(s, "tank-main", SensorKind.WATER_LEVEL, ts0 + s * 1000, 50.0 + s % 7, "%", 1.0)
            for s in seqs
        ],
    )


def publish(client: paho.Client, topic: str, payload: bytes) -> None:
    info = client.publish(topic, payload, qos=1)
    info.wait_for_publish(10)
    assert info.is_published()


def confirmed_seqs(payloads: list[bytes]) -> set[int]:
    seqs: set[int] = set()
    for payload in payloads:
        committed = msgspec.json.decode(payload, type=Committed)
        seqs |= {s for first, last in committed.seqs for s in range(first, last + 1)}
    return seqs


def replay_env(monkeypatch: pytest.MonkeyPatch, settings: CollectorSettings) -> None:
    """The running collector's settings, for ``farmwatch-collector`` run in this process."""
    for name, value in {
        "INFLUX_URL": settings.influx_url,
        "INFLUX_DATABASE": settings.influx_database,
        "FARM_DIR": str(settings.farm_dir),
        "QUARANTINE_PATH": str(settings.quarantine_path),
    }.items():
        monkeypatch.setenv(f"FARMWATCH_COLLECTOR_{name}", value)


def test_readings_refused_on_the_collectors_clock_are_quarantined_whole_and_replayed(
    broker: Broker,
    influx: Influx,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Finding 5: a collector booted a day behind refused the agent's readings as from the
    future; they were acknowledged and kept only as a 1 KiB dead letter. Now the compressed
    batch is kept whole, confirmed only once stored, and replayed after the clock is right."""
    now = int(time.time() * 1000)
    settings = collector_settings(broker, influx)
    collector = start_collector(settings, clock=FrozenClock(now - 2 * DAY_MS))
    agent = broker.watch(committed_topic("oax-mixteca", "pi-1"), "test-agent", user="oax-mixteca")
    letters = broker.watch(DEAD_LETTER_TOPIC, "test-dead-letters")
    farm = broker.client("oax-mixteca", "test-farm")
    payload = encode_batch(levels("oax-mixteca", range(400), now - 600_000), compress=True)
    assert len(payload) > 1024  # more than a dead letter shows
    try:
        publish(farm, readings_topic("oax-mixteca", "pi-1"), payload)
        wait_for(lambda: agent.payloads, what="the confirmation of the quarantined readings")
        (kept,) = collector.quarantine.messages()
        assert kept.payload == payload  # whole: it still inflates
        assert kept.cause == "impossible_value"
        assert "implausible_time" in kept.detail
        assert confirmed_seqs(agent.payloads) == set(range(400))
        wait_for(lambda: letters.payloads, what="the dead letter")
        letter = msgspec.json.decode(letters.payloads[0], type=DeadLetter)
        assert letter.quarantined
        assert len(bytes.fromhex(letter.payload_hex)) == 1024
        assert influx.count("water_level") == 0
    finally:
        farm.disconnect()
        agent.close()
        letters.close()
        collector.stop()

    replay_env(monkeypatch, settings)
    assert main(["--replay-quarantine", "--cause", "unknown_farm"]) == 0  # another cause: none
    assert "0 replayed" in capsys.readouterr().out
    assert influx.count("water_level") == 0
    assert main(["--replay-quarantine"]) == 0  # the collector's clock is right now
    out = capsys.readouterr().out
    assert "1 replayed, 1 written and removed (400 points)" in out
    assert influx.count("water_level") == 400
    assert main(["--check-config"]) == 0
    assert "quarantine" in capsys.readouterr().out
    assert main(["--replay-quarantine"]) == 0
    assert "0 replayed" in capsys.readouterr().out


def test_a_message_still_refused_stays_in_quarantine_after_a_replay(
    broker: Broker,
    influx: Influx,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = collector_settings(broker, influx)
    collector = start_collector(settings)
    farm = broker.client("oax-mixteca", "test-farm")
    try:
        publish(farm, readings_topic("oax-mixteca", "pi-1"), b"{not json")
        wait_for(lambda: list(collector.quarantine.messages()), what="the quarantined message")
    finally:
        farm.disconnect()
        collector.stop()
    replay_env(monkeypatch, settings)
    assert main(["--replay-quarantine"]) == 0
    assert "still quarantined: malformed=1" in capsys.readouterr().out


def test_service_users_and_farms_outside_the_farm_directory_store_nothing(
    broker: Broker, influx: Influx
) -> None:
    """Finding 22: readings published by ``farmwatch-alerts`` under its own name (the ACL
    patterns apply to every user) were stored as a farm of that name."""
    collector = start_collector(collector_settings(broker, influx))
    now = int(time.time() * 1000)
    alerts = broker.client(ALERTS_USER, "test-alerts-user")
    other = broker.client("oax-other", "test-other-farm")  # a broker user, no farm file
    mixteca = broker.client("oax-mixteca", "test-farm")
    try:
        for client, name in ((alerts, ALERTS_USER), (other, "oax-other")):
            publish(client, readings_topic(name, "pi-1"), encode_batch(levels(name, range(3), now)))
        publish(
            mixteca,
            readings_topic("oax-mixteca", "pi-1"),
            encode_batch(levels("oax-mixteca", range(3), now)),
        )
        wait_for(lambda: influx.count("water_level") == 3, what="the known farm's readings")
        wait_for(
            lambda: collector.collector.ingestor.stats.by_cause.get("unknown_farm") == 2,
            what="both unknown farms refused",
        )
        quarantined = sorted(m.topic for m in collector.quarantine.messages("unknown_farm"))
        assert quarantined == [readings_topic(n, "pi-1") for n in (ALERTS_USER, "oax-other")]
        farms = {
            row["farm"] for row in influx.query('SELECT value FROM water_level GROUP BY "farm"')
        }
        assert farms == {"oax-mixteca"}
    finally:
        for client in (alerts, other, mixteca):
            client.disconnect()
        collector.stop()


def test_the_payload_limit_fits_the_brokers_packet_limit_and_whatever_exceeds_it_is_kept(
    broker: Broker, influx: Influx
) -> None:
    """Finding 7 (collector side): the broker's ``max_packet_size`` holds the contract's largest
    payload on the longest topic; a payload over the contract's limit, or one inflating past
    it, is refused as ``oversized`` and kept whole in the quarantine."""
    conf = SHIPPED_BROKER_CONF.read_text(encoding="utf-8")
    (packet_limit,) = (int(v) for v in re.findall(r"^max_packet_size (\d+)$", conf, re.M))
    longest_topic = readings_topic("f" * 32, "a" * 32)
    # PUBLISH: fixed header (1 + up to 4 length bytes), topic (2 + n), packet id (2), properties
    # (farmwatch sets none: 1 length byte; allow a generous 64)
    assert MAX_PAYLOAD_BYTES + 5 + 2 + len(longest_topic) + 2 + 64 <= packet_limit

    collector = start_collector(collector_settings(broker, influx))
    farm = broker.client("chis-frailesca", "test-farm")
    now = int(time.time() * 1000)
    agent = "a" * 32
    topic = readings_topic("chis-frailesca", agent)
    body = encode_batch(levels("chis-frailesca", range(5), now, agent=agent))
    largest = body + b" " * (MAX_PAYLOAD_BYTES - len(body))  # JSON allows trailing whitespace
    too_large = largest + b" "
    inflating = zlib.compress(body + b" " * MAX_PAYLOAD_BYTES)
    try:
        for payload in (largest, too_large, inflating):
            publish(farm, topic, payload)
        wait_for(lambda: influx.count("water_level") == 5, what="the largest allowed payload")
        wait_for(
            lambda: collector.collector.ingestor.stats.by_cause.get("oversized") == 2,
            what="the two oversized payloads",
        )
        kept = {m.payload for m in collector.quarantine.messages("oversized")}
        assert kept == {too_large, inflating}
    finally:
        farm.disconnect()
        collector.stop()
