"""The fault-injection rig: an emulated microcontroller whose sample ``i`` has raw value ``i``
(a soil probe calibrated as value = raw / 1000) feeding a real ``farmwatch-edge`` process, and a
real ``farmwatch-collector`` process; and the check that InfluxDB holds each sample once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from farmwatch_emulators.mcu import McuEmulator
from farmwatch_emulators.pty_link import PtyLink
from support.harness import ChildProcess, agent_process, collector_process
from support.servers import Broker, Influx
from support.waiting import wait_for

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
NOISE = b"\x00\xffnoise$R,1,2*0000\r\n"


@dataclass
class Rig:
    """An emulated microcontroller feeding a real agent process, and a real collector process."""

    mcu: McuEmulator
    link: PtyLink
    agent: ChildProcess
    collector: ChildProcess
    produced: list[float] = field(default_factory=list)

    def produce(
        self, count: int, per_second: float, during: Callable[[], None], *, noise: bool = True
    ) -> None:
        """Sample ``count`` times at a steady rate (with line noise mixed in unless ``noise`` is
        False), running ``during`` (the fault) on another thread meanwhile."""
        fault = threading.Thread(target=during)
        fault.start()
        start = time.monotonic()
        for i in range(count):
            self.mcu.sample("S1", float(len(self.produced)))
            self.produced.append(float(len(self.produced)))
            if noise and i % 97 == 0:
                self.mcu.send_raw(NOISE)
            time.sleep(max(0.0, start + (i + 1) / per_second - time.monotonic()))
        fault.join()


@contextmanager
def running_rig(
    broker: Broker,
    influx: Influx,
    tmp_path: Path,
    *,
    resend_after_s: float = 2.0,
    **agent_settings: str,
) -> Iterator[Rig]:
    """Start the collector (and wait for its subscription), then the agent and its
    microcontroller; stop everything afterwards."""
    farm_file = tmp_path / "fault-farm.toml"
    farm_file.write_text(FAULT_FARM_FILE)
    link = PtyLink(tmp_path / "ttyFARM")
    mcu = McuEmulator(link, interval_s=1, resend_after_s=resend_after_s)
    mcu.start()
    agent = agent_process(broker, farm_file, link.path, tmp_path, FARM, **agent_settings)
    collector = collector_process(broker, influx.url, influx.database, tmp_path)
    try:
        collector.start()
        wait_for(lambda: "Suscrito / subscribed" in collector.log(), what="collector subscribed")
        agent.start()
        wait_for(lambda: mcu.syncs_received > 0, what="agent opened the port")
        yield Rig(mcu, link, agent, collector)
    finally:
        agent.stop()
        collector.stop()
        mcu.stop()
        link.close()


def assert_exactly_once(influx: Influx, produced: list[float], timeout_s: float = 90) -> None:
    """InfluxDB holds each produced sample exactly once, with contiguous sequence numbers and
    the calibrated value."""
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


def assert_sensor_once(
    influx: Influx, measurement: str, sensor: str, produced: list[float], timeout_s: float = 90
) -> list[dict[str, Any]]:
    """InfluxDB holds each raw value ``sensor`` produced exactly once (any source: the raw
    values must be distinct); return its rows."""
    query = f"SELECT raw, seq, value, volume_l FROM {measurement} WHERE sensor = '{sensor}'"
    wait_for(
        lambda: len(influx.query(query)) >= len(produced),
        timeout_s=timeout_s,
        interval_s=0.3,
        what=f"{len(produced)} points of {sensor}",
    )
    time.sleep(1.0)  # anything duplicated or late would show now
    rows = influx.query(query)
    raws = sorted(row["raw"] for row in rows)
    missing = sorted(set(produced) - set(raws))
    assert not missing, f"{sensor}: lost {len(missing)} readings, first {missing[:10]}"
    assert raws == sorted(produced), f"{sensor}: some reading was stored twice"
    assert len({row["seq"] for row in rows}) == len(rows), "one seq stored twice"
    return rows
