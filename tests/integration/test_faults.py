"""Nothing lost, nothing duplicated: fault injection against the real broker and database.

Every test drives an emulated microcontroller whose sample ``i`` has raw value ``i`` (a soil
probe calibrated as value = raw / 1000), runs the real agent and collector as processes, injects
a fault while samples flow, and then compares the exact multiset of raw values the sensor
produced with the one found in InfluxDB, and checks that the agent's sequence numbers are
0…N-1, each once.
"""

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
from farmwatch_local.services import InfluxServer
from farmwatch_shared.contract import ReadingBatch, encode_batch, readings_topic

FARM = "oax-mixteca"
FAULT_FARM_FILE = f"""
[farm]
id = "{FARM}"
name = "Fault injection"

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
    """An emulated microcontroller feeding a real agent process, and a real collector process."""

    mcu: McuEmulator
    link: PtyLink
    agent: ChildProcess
    collector: ChildProcess
    produced: list[float] = field(default_factory=list)

    def produce(self, count: int, per_second: float, during: Callable[[], None]) -> None:
        """Sample ``count`` times at a steady rate (with line noise mixed in), running ``during``
        (the fault) on another thread meanwhile."""
        fault = threading.Thread(target=during)
        fault.start()
        start = time.monotonic()
        for i in range(count):
            self.mcu.sample("S1", float(len(self.produced)))
            self.produced.append(float(len(self.produced)))
            if i % 97 == 0:
                self.mcu.send_raw(b"\x00\xffnoise$R,1,2*0000\r\n")
            time.sleep(max(0.0, start + (i + 1) / per_second - time.monotonic()))
        fault.join()


@pytest.fixture
def rig(broker: Broker, influx: Influx, tmp_path: Path) -> Iterator[Rig]:
    farm_file = tmp_path / "fault-farm.toml"
    farm_file.write_text(FAULT_FARM_FILE)
    link = PtyLink(tmp_path / "ttyFARM")
    mcu = McuEmulator(link, interval_s=1, resend_after_s=2.0)
    mcu.start()
    agent = agent_process(broker, farm_file, link.path, tmp_path, FARM)
    collector = collector_process(broker, influx.url, influx.database, tmp_path)
    collector.start()
    wait_for(lambda: "Suscrito / subscribed" in collector.log(), what="collector subscribed")
    agent.start()
    wait_for(lambda: mcu.syncs_received > 0, what="agent opened the port")
    rig = Rig(mcu, link, agent, collector)
    yield rig
    agent.stop()
    collector.stop()
    mcu.stop()
    link.close()


def assert_exactly_once(influx: Influx, produced: list[float], timeout_s: float = 90) -> None:
    """InfluxDB holds each produced sample exactly once, with contiguous sequence numbers."""
    wait_for(
        lambda: influx.count("soil_moisture") >= len(produced),
        timeout_s=timeout_s,
        interval_s=0.3,
        what=f"{len(produced)} points",
    )
    time.sleep(1.0)  # anything duplicated or late would show now
    rows = influx.query("SELECT raw, seq, value FROM soil_moisture")
    raws = sorted(row["raw"] for row in rows)
    missing = sorted(set(produced) - set(raws))
    assert not missing, f"lost {len(missing)} readings, first {missing[:10]}"
    assert raws == sorted(produced), "some reading was stored twice"
    assert sorted(row["seq"] for row in rows) == list(range(len(produced)))
    assert all(abs(row["value"] - row["raw"] / 1000) < 1e-9 for row in rows)


def test_broker_stopped_mid_run_then_restarted(rig: Rig, broker: Broker, influx: Influx) -> None:
    def outage() -> None:
        time.sleep(1.5)
        broker.server.stop()
        time.sleep(3.0)
        broker.server.start()

    rig.produce(1200, 200, outage)
    assert_exactly_once(influx, rig.produced)


def test_influxdb_stopped_mid_run_then_restarted(broker: Broker, tmp_path: Path) -> None:
    server = InfluxServer(data_dir=tmp_path / "own-influxdb")
    server.start()
    influx = Influx(server, "fault_influx")
    farm_file = tmp_path / "fault-farm.toml"
    farm_file.write_text(FAULT_FARM_FILE)
    link = PtyLink(tmp_path / "ttyFARM")
    mcu = McuEmulator(link, interval_s=1)
    mcu.start()
    agent = agent_process(broker, farm_file, link.path, tmp_path, FARM)
    collector = collector_process(broker, server.url, influx.database, tmp_path)
    rig = Rig(mcu, link, agent, collector)
    collector.start()
    wait_for(lambda: "Suscrito / subscribed" in collector.log(), what="collector subscribed")
    agent.start()
    try:
        wait_for(lambda: mcu.syncs_received > 0, what="agent opened the port")

        def outage() -> None:
            time.sleep(1.5)
            server.stop()
            time.sleep(4.0)
            server.start()

        rig.produce(1200, 200, outage)
        assert_exactly_once(influx, rig.produced)
        assert "InfluxDB no disponible, reintentando / unavailable, retrying" in collector.log()
    finally:
        agent.stop()
        collector.stop()
        mcu.stop()
        link.close()
        server.stop()


def test_collector_killed_under_load_then_restarted(rig: Rig, influx: Influx) -> None:
    def kills() -> None:
        for _ in range(2):
            time.sleep(1.5)
            rig.collector.kill()
            time.sleep(1.0)
            rig.collector.start()

    rig.produce(1500, 250, kills)
    assert_exactly_once(influx, rig.produced)


def test_agent_killed_repeatedly_while_readings_are_produced(rig: Rig, influx: Influx) -> None:
    """Nothing may be lost: the microcontroller keeps each sample until the agent committed it
    (at most its 512-sample buffer while the agent is down, far more than these outages)."""
    restarts = 5

    def kills() -> None:
        for _ in range(restarts):
            time.sleep(1.0)
            rig.agent.kill()
            time.sleep(0.4)
            rig.agent.start()

    rig.produce(1600, 200, kills)
    assert_exactly_once(influx, rig.produced)
    assert rig.mcu.syncs_received >= restarts + 1
    assert rig.mcu.overflowed == 0


def test_a_collector_offline_for_thousands_of_messages_loses_none(
    broker: Broker, influx: Influx, tmp_path: Path
) -> None:
    """Mosquitto's default would keep only 1000 queued messages for the offline collector;
    the shipped configuration keeps them all (bounded by bytes)."""
    collector = collector_process(broker, influx.url, influx.database, tmp_path)
    collector.start()
    wait_for(lambda: "Suscrito / subscribed" in collector.log(), what="collector session created")
    collector.stop()
    publisher = broker.client(FARM, "test-bulk-publisher")
    from farmwatch_shared.contract import Reading, SensorKind

    count = 3000
    infos = []
    for i in range(count):
        one = ReadingBatch(
            v=1,
            farm=FARM,
            agent="pi-1",
            readings=[
                Reading(
                    seq=i,
                    sensor="probe",
                    kind=SensorKind.SOIL_MOISTURE,
                    ts=1_795_000_000_000 + i,
                    value=i / 1000,
                    unit="%",
                    raw=float(i),
                )
            ],
        )
        infos.append(publisher.publish(readings_topic(FARM, "pi-1"), encode_batch(one), qos=1))
    for info in infos:
        info.wait_for_publish(30)
    publisher.disconnect()
    collector.start()
    try:
        assert_exactly_once(influx, [float(i) for i in range(count)])
    finally:
        collector.stop()
