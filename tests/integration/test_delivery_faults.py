"""End to end, nothing lost when the broker loses what it acknowledged (issue 11 finding 10 and
acceptance 4): broker SIGKILL with the collector online and offline, the collector's session
expired. The agent keeps every reading until the collector confirms it stored it, and sends
again what was not confirmed; the collector's idempotent writes absorb the resends.

Real processes: ``farmwatch-edge`` reading an emulated microcontroller, ``farmwatch-collector``,
Mosquitto with the shipped configuration (autosave every 30 s: a SIGKILL within the first 30 s
loses every session and every queued message), InfluxDB."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.faults import Rig, assert_exactly_once, running_rig
from support.servers import Broker, Influx
from support.waiting import wait_for


@pytest.fixture
def rig(broker: Broker, influx: Influx, tmp_path: Path) -> Iterator[Rig]:
    with running_rig(broker, influx, tmp_path, commit_timeout_s="3") as rig:
        yield rig


def test_broker_sigkill_with_the_collector_online_loses_nothing(
    rig: Rig, broker: Broker, influx: Influx
) -> None:
    def power_cut() -> None:
        time.sleep(1.5)
        broker.server.kill()
        time.sleep(1.0)
        broker.server.start()

    rig.produce(600, 150, power_cut, noise=False)
    assert_exactly_once(influx, rig.produced, timeout_s=120)
    assert "Traceback" not in rig.agent.log()


def test_broker_sigkill_with_the_collector_offline_loses_nothing(
    rig: Rig, broker: Broker, influx: Influx
) -> None:
    def outage() -> None:
        time.sleep(0.5)
        rig.collector.stop()  # the broker queues for its session, in memory until autosave
        time.sleep(1.5)
        broker.server.kill()  # ... and loses the queue and the sessions
        time.sleep(1.0)
        broker.server.start()
        time.sleep(1.5)
        rig.collector.start()

    rig.produce(600, 150, outage, noise=False)
    assert_exactly_once(influx, rig.produced, timeout_s=120)


def test_an_expired_collector_session_loses_nothing(rig: Rig, influx: Influx) -> None:
    """The collector away longer than its session expiry: the broker drops its session, and
    every PUBACK says "no matching subscribers" until it subscribes again."""
    rig.collector.stop()
    rig.collector.env["FARMWATCH_COLLECTOR_SESSION_EXPIRY_S"] = "1"
    rig.collector.start()
    wait_for(lambda: rig.collector.log().count("Suscrito / subscribed") >= 2, what="resubscribed")

    def away() -> None:
        time.sleep(0.5)
        rig.collector.stop()
        time.sleep(3.0)  # the session expired: nobody subscribes to the readings
        rig.collector.start()

    rig.produce(450, 150, away, noise=False)
    assert_exactly_once(influx, rig.produced, timeout_s=120)
    assert "publish_not_delivered" in rig.agent.log()
