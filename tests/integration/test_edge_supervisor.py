"""No thread of the agent dies alone: a worker that dies stops the agent process (exit 70, one
clear log line) and the retained status says offline, so systemd restarts it."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import msgspec
from support.harness import agent_process
from support.servers import Broker
from support.waiting import wait_for

from farmwatch_emulators.mcu import McuEmulator
from farmwatch_emulators.pty_link import PtyLink
from farmwatch_shared.contract import AgentStatus, status_topic
from farmwatch_shared.supervisor import EX_SOFTWARE

FARM = "oax-mixteca"
FARM_FILE = f"""
[farm]
id = "{FARM}"
name = "Supervisor"

[[agents]]
id = "pi-1"

[[sensors]]
id = "probe"
agent = "pi-1"
channel = "S1"
kind = "soil_moisture"
coefficients = [0.0, 0.001]
"""
FILE_SIZE_LIMIT = 400_000
# A full SD card, as the kernel reports it: a write past RLIMIT_FSIZE fails with EFBIG (Python
# ignores SIGXFSZ), so SQLite's commit raises OperationalError ("database or disk is full") once
# the outbox's WAL file reaches the limit.
DISK_FULL = (
    "import resource, sys; "
    f"resource.setrlimit(resource.RLIMIT_FSIZE, ({FILE_SIZE_LIMIT}, {FILE_SIZE_LIMIT})); "
    "from edge.cli import main; sys.exit(main())"
)


def retained_status(broker: Broker) -> AgentStatus:
    watcher = broker.watch(status_topic(FARM, "pi-1"), "test-supervisor-status")
    try:
        payloads = wait_for(lambda: watcher.payloads, what="the retained status")
        return msgspec.json.decode(payloads[-1], type=AgentStatus)
    finally:
        watcher.close()


def test_a_disk_error_in_the_serial_reader_stops_the_agent_with_70_and_status_offline(
    broker: Broker, tmp_path: Path
) -> None:
    farm_file = tmp_path / "farm.toml"
    farm_file.write_text(FARM_FILE)
    link = PtyLink(tmp_path / "ttyMCU")
    mcu = McuEmulator(link, interval_s=1)
    mcu.start()
    agent = agent_process(broker, farm_file, link.path, tmp_path, FARM)
    agent = dataclasses.replace(agent, command=[sys.executable, "-c", DISK_FULL])
    agent.start()
    try:
        wait_for(lambda: mcu.syncs_received > 0, what="agent opened the port")
        wait_for(lambda: retained_status(broker).state == "online", what="agent online")
        process = agent.process
        assert process is not None
        for i in range(400):  # far more than the limit lets the outbox's WAL hold
            mcu.sample("S1", float(i))
            if process.poll() is not None:
                break
            wait_for(
                lambda: mcu.unacknowledged == 0 or process.poll() is not None,
                what="the agent acknowledged the sample, or exited",
            )
        code = process.wait(15)
        log = agent.log()
        assert code == EX_SOFTWARE, log
        assert "Hilo serial terminó / thread serial died: OperationalError" in log
        assert retained_status(broker).state == "offline"
    finally:
        agent.stop()
        mcu.stop()
        link.close()
