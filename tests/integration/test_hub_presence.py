"""An agent's presence on the hub (issue 15): the key-value bucket instead of MQTT's retained
status and last will. The agent puts its status while it runs; killed, its key ages out after
the bucket's TTL and the server's marker becomes an ``offline`` point (what the fleet view and
the web page read) and the alerting service's record of the agent going offline; ``farmwatch-hub
status`` lists it. The alerting service runs active/standby on its pinned consumer: killed,
the standby takes the pin and sends the next alert.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from support.alerts import FakeGateway
from support.faults import FARM, FAULT_FARM_FILE
from support.hub import Hub, hub_agent, hub_alerts, hub_collector, running_hub
from support.servers import Influx
from support.waiting import wait_for

from farmwatch_emulators.mcu import McuEmulator
from farmwatch_emulators.pty_link import PtyLink
from farmwatch_shared.hub.layout import ADMIN_USER

CONTACT = """
[[contacts]]
name = "Encargado"
phone = "+529510000001"
language = "es"
role = "primary"
"""
DRY = """
[[alerts]]
id = "probe-dry"
type = "soil_moisture_below"
sensor = "probe"
threshold_pct = 12
for_s = 0
"""


def _farm_dir(tmp_path: Path, extra: str) -> Path:
    farm_dir = tmp_path / "farms"
    farm_dir.mkdir()
    (farm_dir / f"{FARM}.toml").write_text(FAULT_FARM_FILE + extra + CONTACT)
    return farm_dir


def _agent_seen(state_db: Path) -> tuple[int, int] | None:
    db = sqlite3.connect(f"file:{state_db}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT last_seen, online FROM agents_seen WHERE farm=?", (FARM,))
        found = row.fetchone()
        return (int(found[0]), int(found[1])) if found else None
    except sqlite3.OperationalError:
        return None  # not created yet
    finally:
        db.close()


def _hub_status(hub: Hub) -> str:
    password = hub.secrets_dir / "admin.password"
    password.write_text(hub.cluster.passwords[ADMIN_USER] + "\n")
    command = [sys.executable, "-m", "collector.hub_cli", "status", "--servers"]
    command += [",".join(hub.cluster.servers), "--password-file", str(password)]
    if hub.cluster.ca_file is not None:
        command += ["--ca-file", str(hub.cluster.ca_file)]
    result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)
    return result.stdout


def test_a_killed_agent_goes_offline_when_its_presence_ages_out(
    tmp_path: Path, influx: Influx, gateway: FakeGateway
) -> None:
    farm_dir = _farm_dir(tmp_path, "")
    with running_hub(tmp_path, [FARM], size=1, tls=False) as hub:
        collector = hub_collector(hub, influx, farm_dir, tmp_path, "a")
        alerts = hub_alerts(hub, farm_dir, gateway.url, tmp_path, "a")
        link = PtyLink(tmp_path / "ttyFARM")
        mcu = McuEmulator(link, interval_s=1)
        agent = hub_agent(hub, farm_dir / f"{FARM}.toml", link.path, tmp_path, FARM)
        try:
            collector.start()
            alerts.start()
            mcu.start()
            agent.start()
            online = "SELECT online, outbox_backlog FROM agent_status"
            wait_for(lambda: influx.query(online), what="the agent's presence stored")
            assert influx.query(online)[-1]["online"] is True
            wait_for(lambda: _agent_seen(tmp_path / "alerts-a.sqlite3"), what="alerts saw it")
            status = _hub_status(hub)
            assert f"{FARM}.pi-1: en línea / online" in status, status
            agent.kill()  # no clean stop: nothing says offline but the bucket's TTL
            killed_ms = time.time() * 1000
            wait_for(
                lambda: any(row["online"] is False for row in influx.query(online)),
                timeout_s=40,
                what="the offline point from the presence marker",
            )
            offline = [row for row in influx.query(f"{online}, time") if not row["online"]]
            assert len(offline) == 1
            assert offline[0]["time"] >= killed_ms - 2500  # the last put plus the TTL
            wait_for(
                lambda: (_agent_seen(tmp_path / "alerts-a.sqlite3") or (0, 1))[1] == 0,
                what="the alerting service saw the agent go offline",
            )
            assert "offline (expired)" in _hub_status(hub)
        finally:
            for process in (agent, alerts, collector):
                process.stop()
            mcu.stop()
            link.close()


def test_the_standby_alerting_service_takes_the_pin_and_sends(
    tmp_path: Path, influx: Influx, gateway: FakeGateway
) -> None:
    farm_dir = _farm_dir(tmp_path, DRY)
    with running_hub(tmp_path, [FARM]) as hub:
        first = hub_alerts(hub, farm_dir, gateway.url, tmp_path, "first")
        second = hub_alerts(hub, farm_dir, gateway.url, tmp_path, "second")
        link = PtyLink(tmp_path / "ttyFARM")
        mcu = McuEmulator(link, interval_s=1)
        agent = hub_agent(hub, farm_dir / f"{FARM}.toml", link.path, tmp_path, FARM)
        sends = "Este proceso envía las alertas / this process sends the alerts"
        try:
            first.start()
            wait_for(lambda: sends in first.log(), what="the first process pinned")
            second.start()
            wait_for(lambda: "Suscrito / subscribed" in second.log(), what="standby pulling")
            time.sleep(2.0)
            assert sends not in second.log(), "two processes send"
            first.kill()
            killed = time.monotonic()
            wait_for(lambda: sends in second.log(), timeout_s=30, what="the standby took over")
            took_over_s = time.monotonic() - killed
            mcu.start()
            agent.start()
            wait_for(lambda: mcu.syncs_received > 0, what="agent opened the port")
            mcu.sample("S1", 50.0)  # 0.05 % volumetric water: dry
            wait_for(lambda: gateway.requests, what="the alert from the new holder")
            assert len(gateway.requests) == 1
            print(f"\nalerting hand-over: the standby sent {took_over_s:.1f} s after the kill")
        finally:
            for process in (agent, second, first):
                process.stop()
            mcu.stop()
            link.close()
