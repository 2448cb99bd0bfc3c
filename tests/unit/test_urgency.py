"""The event-driven uplink's decision (``edge/urgency.py``): readings wait for the long batch
age unless they hold news an operator must hear about; and the uplink acts on it."""

from __future__ import annotations

import concurrent.futures
import logging
import queue
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from support.clocks import SteppingClock
from support.paths import FARM_FILES

from edge.batching import payload_limit
from edge.cli import check_signs_of_life
from edge.outbox import Outbox
from edge.settings import EdgeSettings
from edge.transport import UplinkArgs
from edge.uplink import EventQueue, Uplink
from edge.uplink_jetstream import HubEventQueue, JetStreamUplink
from edge.urgency import SensorWatch, Urgency, farm_watches
from farmwatch_shared.contract import Reading, SensorKind, decode_batch
from farmwatch_shared.farm.model import load_farm_config
from farmwatch_shared.problems import ProblemLog

T0 = 1_795_000_000_000
MINUTE = 60_000
TROUGH = SensorWatch(bands=((25.0, 35.0),), fall=10.0, silent_after_ms=3 * MINUTE)
SOIL = SensorWatch(silent_after_ms=3 * MINUTE)


class Feed:
    """Readings of two sensors, numbered as the outbox numbers them."""

    def __init__(self) -> None:
        self.seq = 0

    def reading(self, sensor: str, value: float, minute: float) -> Reading:
        self.seq += 1
        kind = SensorKind.WATER_LEVEL if sensor == "trough" else SensorKind.SOIL_MOISTURE
        return Reading(self.seq, sensor, kind, T0 + int(minute * MINUTE), value, "%", 0.0)


def started(urgency: Urgency, feed: Feed) -> None:
    """Past the restart: one batch sent (trough at 50 %, soil at 30 %)."""
    first = [feed.reading("trough", 50.0, 0), feed.reading("soil", 30.0, 0)]
    assert urgency.reason(first, T0) == "restart"
    urgency.sent(first, T0)


def test_the_first_readings_after_a_start_go_at_once_then_readings_wait() -> None:
    urgency = Urgency({"trough": TROUGH, "soil": SOIL})
    feed = Feed()
    assert urgency.reason([], T0) is None  # nothing to send yet
    started(urgency, feed)
    waiting = [feed.reading("trough", 49.5, 1), feed.reading("soil", 29.9, 1)]
    assert urgency.reason(waiting, T0 + MINUTE) is None


def test_going_below_a_threshold_is_news_and_noise_around_it_is_not() -> None:
    urgency = Urgency({"trough": replace(TROUGH, fall=None)})
    feed = Feed()
    started(urgency, feed)
    waiting = [feed.reading("trough", 26.0, 1), feed.reading("trough", 24.9, 2)]
    assert urgency.reason(waiting, T0 + 2 * MINUTE) == "threshold trough 25"
    urgency.sent(waiting, T0 + 2 * MINUTE)
    noisy = [feed.reading("trough", v, 3 + i) for i, v in enumerate([25.2, 24.8, 26.0, 24.7])]
    assert urgency.reason(noisy, T0 + 6 * MINUTE) is None  # still inside the band
    urgency.sent(noisy, T0 + 6 * MINUTE)
    refilled = [feed.reading("trough", 35.5, 7)]
    assert urgency.reason(refilled, T0 + 7 * MINUTE) == "threshold trough 35"  # recovered


def test_a_fast_fall_since_what_the_server_knows_is_news() -> None:
    urgency = Urgency({"trough": TROUGH})
    feed = Feed()
    started(urgency, feed)  # the server knows 50 %
    slow = [feed.reading("trough", 50.0 - i, 1 + i) for i in range(9)]  # down to 42 %
    assert urgency.reason(slow, T0 + 10 * MINUTE) is None
    slow.append(feed.reading("trough", 40.0, 10))
    assert urgency.reason(slow, T0 + 10 * MINUTE) == "fall trough"


def test_a_sensor_gone_silent_is_news_once_and_its_return_is_news() -> None:
    urgency = Urgency({"trough": TROUGH, "soil": SOIL})
    feed = Feed()
    started(urgency, feed)
    waiting = [feed.reading("trough", 50.0, m) for m in (1, 2, 3)]  # the soil probe is quiet
    assert urgency.reason(waiting, T0 + 3 * MINUTE - 1) is None
    assert urgency.reason(waiting, T0 + 3 * MINUTE) == "silent soil"
    urgency.sent(waiting, T0 + 3 * MINUTE)
    later = [feed.reading("trough", 50.0, m) for m in (4, 5)]
    assert urgency.reason(later, T0 + 5 * MINUTE) is None  # told once
    later.append(feed.reading("soil", 28.0, 6))
    assert urgency.reason(later, T0 + 6 * MINUTE) == "back soil"


def test_news_stays_until_the_reading_that_carries_it_was_sent() -> None:
    urgency = Urgency({"trough": replace(TROUGH, fall=None)})
    feed = Feed()
    started(urgency, feed)
    waiting = [feed.reading("trough", 30.0, 1), feed.reading("trough", 20.0, 2)]
    assert urgency.reason(waiting, T0 + 2 * MINUTE) == "threshold trough 25"
    urgency.sent(waiting[:1], T0 + 2 * MINUTE)  # the batch was cut before the news
    assert urgency.reason(waiting[1:], T0 + 2 * MINUTE) == "threshold trough 25"
    urgency.sent(waiting[1:], T0 + 2 * MINUTE)
    assert urgency.reason([feed.reading("trough", 20.0, 3)], T0 + 3 * MINUTE) is None


def test_the_shipped_farm_files_rules_become_watches() -> None:
    farm = load_farm_config(FARM_FILES / "oax-mixteca.toml")
    watches = farm_watches(farm, "pi-1", level_fall=10.0)
    assert watches["trough-north"].bands == ((25.0, 35.0),)
    assert watches["trough-north"].fall == 10.0
    assert watches["tank-main"].fall == 2.0  # tank-leak: 4 %/h over its 30-minute window
    assert watches["soil-20cm"].bands == ((12.0, 14.0),)
    assert watches["soil-20cm"].fall is None
    assert watches["rain"].silent_after_ms == 3 * MINUTE
    frailesca = load_farm_config(FARM_FILES / "chis-frailesca.toml")
    bus = farm_watches(frailesca, "pi-1", level_fall=None)
    assert bus["soil-20cm"].silent_after_ms == 3 * 300_000  # an SDI-12 probe read every 5 min
    assert bus["trough-hill"].silent_after_ms is None  # LoRaWAN: sends when it wakes
    assert bus["trough-hill"].bands  # its threshold rule is still news at once


@dataclass
class Info:
    """What paho's publish returns, as far as the uplink looks."""

    rc: int
    mid: int


class RecordingPublisher:
    """A connected publisher that keeps what it was handed (no broker in this lane)."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []

    @property
    def connected(self) -> bool:
        return True

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> Info:
        self.payloads.append(payload)
        return Info(0, len(self.payloads))


class RecordingHubPublisher:
    """A connected hub publisher whose stream acknowledges nothing (none is needed here)."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []

    @property
    def connected(self) -> bool:
        return True

    def publish(
        self, subject: str, payload: bytes, msg_id: str | None
    ) -> concurrent.futures.Future[bool]:
        self.payloads.append(payload)
        return concurrent.futures.Future()


@pytest.mark.parametrize("transport", ["mqtt", "jetstream"])
def test_the_uplink_holds_readings_for_the_batch_age_unless_they_are_news(
    tmp_path: Path, transport: str
) -> None:
    clock = SteppingClock(T0)
    outbox = Outbox(tmp_path / "outbox.sqlite3", 1000)
    args = UplinkArgs(
        farm="oax-mixteca",
        agent="pi-1",
        outbox=outbox,
        clock=clock,
        problems=ProblemLog(logging.getLogger("test.urgency")),
        batch_max_readings=200,
        batch_max_age_s=900.0,
        compress=True,
        window=8,
        payload_limit=payload_limit(256 * 1024),
        payload_version=2,
        urgency=Urgency({"trough": replace(TROUGH, silent_after_ms=None)}),
    )
    publisher: RecordingPublisher | RecordingHubPublisher
    uplink: Uplink | JetStreamUplink
    if transport == "mqtt":
        publisher = RecordingPublisher()
        events: EventQueue = queue.SimpleQueue()
        uplink = Uplink(publisher=publisher, events=events, commit_timeout_s=300.0, **args)
    else:
        publisher = RecordingHubPublisher()
        hub_events: HubEventQueue = queue.SimpleQueue()
        uplink = JetStreamUplink(publisher=publisher, events=hub_events, wake=lambda: None, **args)
    feed = Feed()

    def add(value: float, minute: int) -> None:
        clock.now = T0 + minute * MINUTE
        reading = feed.reading("trough", value, minute)
        outbox.add(Reading(0, *[getattr(reading, f) for f in reading.__struct_fields__[1:]]))

    try:
        add(50.0, 0)
        uplink.pump()
        assert len(publisher.payloads) == 1  # the restart
        for minute in range(1, 10):
            add(50.0 - minute, minute)
            uplink.pump()
        assert len(publisher.payloads) == 1  # nine readings wait
        add(24.0, 10)
        uplink.pump()
        assert len(publisher.payloads) == 2  # below the threshold: at once
        assert [r.value for r in decode_batch(publisher.payloads[1]).readings][-1] == 24.0
        assert len(decode_batch(publisher.payloads[1]).readings) == 10
        add(23.0, 11)
        clock.now = T0 + 25 * MINUTE
        uplink.pump()
        assert len(publisher.payloads) == 2  # 14 minutes old: waits
        clock.now = T0 + 26 * MINUTE
        uplink.pump()
        assert len(publisher.payloads) == 3  # the batch age
    finally:
        outbox.close()


def test_the_shipped_batch_age_keeps_every_farms_silent_rule_quiet() -> None:
    for farm_id in ("oax-mixteca", "oax-istmo", "chis-frailesca"):
        path = FARM_FILES / f"{farm_id}.toml"
        farm = load_farm_config(path)
        check_signs_of_life(EdgeSettings(farm_file=path), farm, "pi-1")
    mixteca = FARM_FILES / "oax-mixteca.toml"
    edge = EdgeSettings(farm_file=mixteca, batch_max_age_s=1200, status_interval_s=3600)
    check_signs_of_life(edge, load_farm_config(mixteca), "pi-1")  # 10 minutes to spare
    quiet = EdgeSettings(farm_file=mixteca, batch_max_age_s=1300, status_interval_s=1300)
    with pytest.raises(ValueError, match="agent-silent"):
        check_signs_of_life(quiet, load_farm_config(mixteca), "pi-1")
    chatty = EdgeSettings(farm_file=mixteca, batch_max_age_s=3600, status_interval_s=900)
    check_signs_of_life(chatty, load_farm_config(mixteca), "pi-1")  # the status is enough
    hub = EdgeSettings(
        farm_file=mixteca,
        batch_max_age_s=1300,
        status_interval_s=3600,
        transport="jetstream",
        nats_servers="nats://127.0.0.1:14222",
        nats_presence_interval_s=60,
    )
    check_signs_of_life(hub, load_farm_config(mixteca), "pi-1")  # the presence puts are enough
    frailesca = FARM_FILES / "chis-frailesca.toml"
    slow = EdgeSettings(farm_file=frailesca, batch_max_age_s=6700, status_interval_s=900)
    with pytest.raises(ValueError, match="trough-hill-silent"):  # a sensor's: only batches count
        check_signs_of_life(slow, load_farm_config(frailesca), "pi-1")
