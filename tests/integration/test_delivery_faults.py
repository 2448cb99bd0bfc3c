"""End to end, nothing lost when the broker loses what it acknowledged (issue 11 finding 10 and
acceptance 4): broker SIGKILL with the collector online and offline, the collector's session
expired. The agent keeps every reading until the collector confirms it stored it, and sends
again what was not confirmed; the collector's idempotent writes absorb the resends.

Real processes: ``farmwatch-edge`` reading an emulated microcontroller, ``farmwatch-collector``,
Mosquitto with the shipped configuration (autosave every 30 s: a SIGKILL within the first 30 s
loses every session and every queued message), InfluxDB."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support.harness import ChildProcess, agent_process, collector_process
from support.servers import Broker, Influx
from support.waiting import wait_for

from farmwatch_emulators.mcu import McuEmulator
from farmwatch_emulators.pty_link import PtyLink

FARM = "oax-mixteca"
FARM_FILE = f"""
[farm]
id = "{FARM}"
name = "Delivery faults"

[[agents]]
id = "pi-1"

[[sensors]]
id = "probe"
agent = "pi-1"
channel = "S1"
kind = "soil_moisture"
coefficients = [0.0, 0.001]
"""


@dataclass
class Rig:
    """A microcontroller feeding an agent process, and a collector process."""

    mcu: McuEmulator
    agent: ChildProcess
    collector: ChildProcess
    produced: list[float] = field(default_factory=list)

    def produce(self, count: int, per_second: float, during: Callable[[], None]) -> None:
        fault = threading.Thread(target=during)
        fault.start()
        start = time.monotonic()
        for i in range(count):
            self.mcu.sample("S1", float(len(self.produced)))
            self.produced.append(float(len(self.produced)))
            time.sleep(max(0.0, start + (i + 1) / per_second - time.monotonic()))
        fault.join()


@pytest.fixture
def rig(broker: Broker, influx: Influx, tmp_path: Path) -> Iterator[Rig]:
    farm_file = tmp_path / "farm.toml"
    farm_file.write_text(FARM_FILE)
    link = PtyLink(tmp_path / "ttyFARM")
    mcu = McuEmulator(link, interval_s=1, resend_after_s=2.0)
    mcu.start()
    agent = agent_process(broker, farm_file, link.path, tmp_path, FARM, commit_timeout_s="3")
    collector = collector_process(broker, influx.url, influx.database, tmp_path)
    collector.start()
    wait_for(lambda: "Suscrito / subscribed" in collector.log(), what="collector subscribed")
    agent.start()
    wait_for(lambda: mcu.syncs_received > 0, what="agent opened the port")
    yield Rig(mcu, agent, collector)
    agent.stop()
    collector.stop()
    mcu.stop()
    link.close()


def assert_all_stored_once(influx: Influx, produced: list[float]) -> None:
    wait_for(
        lambda: influx.count("soil_moisture") >= len(produced),
        timeout_s=120,
        interval_s=0.5,
        what=f"{len(produced)} points",
    )
    time.sleep(1.0)
    rows = influx.query("SELECT raw, seq FROM soil_moisture")
    raws = sorted(row["raw"] for row in rows)
    missing = sorted(set(produced) - set(raws))
    assert not missing, f"lost {len(missing)} readings, first {missing[:10]}"
    assert raws == sorted(produced), "some reading was stored twice"
    assert sorted(row["seq"] for row in rows) == list(range(len(produced)))


def test_broker_sigkill_with_the_collector_online_loses_nothing(
    rig: Rig, broker: Broker, influx: Influx
) -> None:
    def power_cut() -> None:
        time.sleep(1.5)
        broker.server.kill()
        time.sleep(1.0)
        broker.server.start()

    rig.produce(600, 150, power_cut)
    assert_all_stored_once(influx, rig.produced)
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

    rig.produce(600, 150, outage)
    assert_all_stored_once(influx, rig.produced)


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

    rig.produce(450, 150, away)
    assert_all_stored_once(influx, rig.produced)
    assert "publish_not_delivered" in rig.agent.log()
