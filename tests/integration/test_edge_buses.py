"""The agent process reads a field bus (pymodbus's own RTU server on a pty) next to its
microcontroller, and both reach InfluxDB through the same commit path."""

from __future__ import annotations

from pathlib import Path

from support.harness import agent_process, collector_process
from support.servers import Broker, Influx
from support.waiting import wait_for

from farmwatch_emulators.mcu import McuEmulator
from farmwatch_emulators.modbus_bus import ModbusRtuBus
from farmwatch_emulators.pty_link import PtyLink

FARM_FILE = """
[farm]
id = "oax-mixteca"
name = "Buses"

[[agents]]
id = "pi-1"

[[buses]]
id = "rs485-1"
agent = "pi-1"
driver = "modbus_rtu"
port = "{bus_port}"
timeout_s = 0.5
devices = [{{ address = 1, interval_s = 0.5, options = {{ register_map = "soil-th-rs485" }} }}]

[[sensors]]
id = "probe"
agent = "pi-1"
channel = "S1"
kind = "soil_moisture"
coefficients = [0.0, 0.001]

[[sensors]]
id = "soil-rs485"
agent = "pi-1"
channel = "M1"
kind = "soil_moisture"
coefficients = [0.0, 1.0]
source = {{ bus = "rs485-1", address = 1, point = "moisture" }}
"""


def test_agent_reads_a_modbus_bus_and_its_microcontroller_together(
    broker: Broker, influx: Influx, tmp_path: Path
) -> None:
    bus = ModbusRtuBus({1: {3: {0: 312, 1: 215, 2: 1450}}}).start()  # 31.2 %, 21.5 °C
    farm_file = tmp_path / "farm.toml"
    farm_file.write_text(FARM_FILE.format(bus_port=bus.agent_path))
    link = PtyLink(tmp_path / "ttyMCU")
    mcu = McuEmulator(link, interval_s=1)
    mcu.start()
    collector = collector_process(broker, influx.url, influx.database, tmp_path)
    agent = agent_process(broker, farm_file, link.path, tmp_path, "oax-mixteca")
    collector.start()
    wait_for(lambda: "Suscrito / subscribed" in collector.log(), what="collector subscribed")
    agent.start()
    try:
        wait_for(lambda: mcu.syncs_received > 0, what="agent opened the microcontroller port")
        for i in range(3):
            mcu.sample("S1", float(i))
        wait_for(
            lambda: (
                len(influx.query("SELECT value FROM soil_moisture WHERE sensor='soil-rs485'")) >= 3
            ),
            what="three polls of the Modbus probe",
        )
        wait_for(
            lambda: len(influx.query("SELECT value FROM soil_moisture WHERE sensor='probe'")) == 3,
            what="the microcontroller's readings",
        )
        bus_rows = influx.query("SELECT value, raw FROM soil_moisture WHERE sensor='soil-rs485'")
        assert {round(r["value"], 6) for r in bus_rows} == {31.2}
        seqs = [r["seq"] for r in influx.query("SELECT seq, value FROM soil_moisture")]
        assert len(seqs) == len(set(seqs))  # one sequence for the agent, whatever the source
    finally:
        agent.stop()
        collector.stop()
        mcu.stop()
        link.close()
        bus.stop()
    assert "Traceback" not in agent.log()
