"""Nothing lost, nothing duplicated: fault injection against the real broker and database.

Every test drives an emulated microcontroller whose sample ``i`` has raw value ``i`` (a soil
probe calibrated as value = raw / 1000), runs the real agent and collector as processes, injects
a fault while samples flow, and then compares the exact multiset of raw values the sensor
produced with the one found in InfluxDB, and checks that the agent's sequence numbers are
0…N-1, each once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.faults import FARM, Rig, assert_exactly_once, running_rig
from support.harness import collector_process
from support.servers import Broker, Influx
from support.waiting import wait_for

from farmwatch_local.services import InfluxServer
from farmwatch_shared.contract import ReadingBatch, encode_batch, readings_topic


@pytest.fixture
def rig(broker: Broker, influx: Influx, tmp_path: Path) -> Iterator[Rig]:
    with running_rig(broker, influx, tmp_path) as rig:
        yield rig


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
    try:
        with running_rig(broker, influx, tmp_path, resend_after_s=5.0) as rig:

            def outage() -> None:
                time.sleep(1.5)
                server.stop()
                time.sleep(4.0)
                server.start()

            rig.produce(1200, 200, outage)
            assert_exactly_once(influx, rig.produced)
            unavailable = "InfluxDB no disponible, reintentando / unavailable, retrying"
            assert unavailable in rig.collector.log()
    finally:
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
