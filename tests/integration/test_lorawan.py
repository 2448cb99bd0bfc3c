"""LoRaWAN sensors end to end: the network server's integration events, published to a real
Mosquitto standing in for its broker, read by a real ``farmwatch-edge`` process, stored by a
real ``farmwatch-collector`` in InfluxDB (issue 13, acceptance 1 and 2).

The emulated network server (``farmwatch_emulators.lorawan``) encodes each vendor payload from
the vendor's document and wraps it in the JSON ChirpStack v4 or The Things Stack v3 publishes.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

from support.faults import assert_sensor_once
from support.lorawan import LorawanRig, now_ms, running_lorawan
from support.paths import FARM_FILES, REPO
from support.servers import Broker, Influx
from support.waiting import wait_for

from dashboards.build import GENERATED
from dashboards.macros import expand, panel_range
from farmwatch_emulators.lorawan import (
    Published,
    em500_swl_payload,
    ldds75_payload,
    lse01_payload,
)

MIN = 60_000
STARTED = "Agente iniciado / agent started"


def rows(influx: Influx, measurement: str, sensor: str) -> list[dict[str, Any]]:
    return influx.query(f"SELECT raw, value, volume_l FROM {measurement} WHERE sensor = '{sensor}'")


def send_one_of_each(rig: LorawanRig, t: int) -> None:
    """An uplink of each codec: trough 625 mm below the sensor, soil at 21.37 % VWC, the tank
    with 95 cm of water over its submersible sensor."""
    rig.server.uplink(
        "trough-node", 2, ldds75_payload(625, battery_mv=3050), t, rssi=-104, snr=-2.5
    )
    rig.server.uplink("soil-node", 2, lse01_payload(21.37), t + 1000)
    rig.server.uplink("tank-node", 85, em500_swl_payload(95, battery_pct=77), t + 2000)


def assert_one_of_each_stored(influx: Influx, t: int) -> None:
    wait_for(lambda: rows(influx, "water_level", "tank"), timeout_s=60, what="the tank reading")
    wait_for(lambda: rows(influx, "soil_moisture", "soil"), what="the soil reading")
    (trough,) = rows(influx, "water_level", "trough")
    # 900 mm mount height - 625 mm = 275 mm of 550 mm: 50 %; 25 × 7 × 2.75 dm³
    assert (trough["time"], trough["raw"], trough["value"], trough["volume_l"]) == (
        t,
        625,
        50,
        481.25,
    )
    (soil,) = rows(influx, "soil_moisture", "soil")
    assert (soil["time"], soil["raw"], soil["value"]) == (t + 1000, 21.37, 21.37)
    (tank,) = rows(influx, "water_level", "tank")
    # 950 mm over the sensor + its 50 mm above the bottom = 1000 mm of 2000: 50 %, π·10²·10 dm³
    assert (tank["time"], tank["raw"], tank["value"]) == (t + 2000, 950, 50)
    assert tank["volume_l"] == round(math.pi * 1000, 2)


def fleet_panel(title: str, influx: Influx) -> list[dict[str, Any]]:
    """Rows of a fleet dashboard panel's first query, as Grafana would run it now."""
    board = json.loads((GENERATED / "farmwatch-fleet.json").read_text(encoding="utf-8"))
    panel = next(p for p in board["panels"] if p["title"].startswith(title))
    text = expand(
        panel["targets"][0]["query"],
        panel_range(board, panel, now_ms()),
        {"farm": None},
        min_interval=panel.get("interval"),
    )
    return influx.query(text)


def test_chirpstack_uplinks_of_each_codec_become_calibrated_readings_at_their_uplink_time(
    broker: Broker, influx: Influx, tmp_path: Path
) -> None:
    with running_lorawan(broker, influx, tmp_path, "chirpstack") as rig:
        t = now_ms() - 10 * MIN
        send_one_of_each(rig, t)
        rig.server.status("soil-node", t + 3000, battery_pct=88.0, margin_db=9)
        assert_one_of_each_stored(influx, t)
        # device health with the agent's status, and on the fleet dashboard
        wait_for(
            lambda: len(fleet_panel("Último mensaje LoRaWAN", influx)) == 3,
            what="the LoRaWAN devices on the fleet dashboard",
        )
        last = {r["device"]: r["last"] for r in fleet_panel("Último mensaje LoRaWAN", influx)}
        assert last == {"trough-node": t, "soil-node": t + 1000, "tank-node": t + 2000}
        health = {
            r["device"]: r for r in influx.query("SELECT * FROM device_health GROUP BY device")
        }
        wait_for(
            lambda: any(
                r["margin_db"] == 9
                for r in influx.query(
                    "SELECT margin_db FROM device_health WHERE device = 'soil-node'"
                )
                if r["margin_db"] is not None
            ),
            what="the device-status event in the health",
        )
        trough = health["trough-node"]
        assert (trough["battery_v"], trough["rssi_dbm"], trough["snr_db"]) == (3.05, -104, -2.5)
        assert (trough["fcnt"], trough["lost_uplinks"], trough["refused"]) == (0, 0, 0)
        assert health["tank-node"]["battery_pct"] == 77
        battery = fleet_panel("Batería y señal LoRaWAN", influx)
        assert {r["device"] for r in battery} == {"trough-node", "soil-node", "tank-node"}
        assert rig.alive()
    assert "Traceback" not in rig.agent.log()


def test_things_stack_uplinks_of_each_codec_become_calibrated_readings(
    broker: Broker, influx: Influx, tmp_path: Path
) -> None:
    """The Things Stack's MQTT server speaks MQTT 3.1.1 and delivers at QoS 0: the agent
    subscribes with 3.1.1 and says what that costs."""
    with running_lorawan(broker, influx, tmp_path, "tts") as rig:
        t = now_ms() - 10 * MIN
        send_one_of_each(rig, t)
        assert_one_of_each_stored(influx, t)
        rig.server.lose("trough-node", 4)  # four uplinks no gateway heard
        rig.server.uplink("trough-node", 2, ldds75_payload(700), t + 100 * MIN)
        wait_for(lambda: len(rows(influx, "water_level", "trough")) == 2, what="second uplink")
        wait_for(
            lambda: any(
                r["lost_uplinks"] == 4
                for r in influx.query(
                    "SELECT lost_uplinks FROM device_health WHERE device = 'trough-node'"
                )
            ),
            what="the gap in the frame counter counted",
        )
        assert "QoS 0" in rig.agent.log()
    assert "Traceback" not in rig.agent.log()


def flood(
    rig: LorawanRig, count: int, start_ms: int, during: Any, produced: dict[str, list[float]]
) -> None:
    """``count`` uplinks of the soil probe and the trough, alternately, each with a raw value of
    its own, while ``during`` (the fault) runs on another thread."""
    fault = threading.Thread(target=during)
    fault.start()
    for i in range(count):
        at = start_ms + i * 1000
        if i % 2:
            distance = 400 + i // 2  # 400–799 mm: within the trough (full at 350 mm)
            rig.server.uplink("trough-node", 2, ldds75_payload(distance), at)
            produced["trough"].append(float(distance))
        else:
            moisture = round(5 + i / 100, 2)
            rig.server.uplink("soil-node", 2, lse01_payload(moisture), at)
            produced["soil"].append(moisture)
        time.sleep(0.004)
    fault.join()


def test_the_agent_killed_between_receipt_and_commit_loses_and_doubles_nothing(
    broker: Broker, influx: Influx, tmp_path: Path
) -> None:
    """SIGKILL, again and again, while uplinks flow: some land between the agent's receipt and
    its commit (received, unacknowledged), others between its commit and its acknowledgement."""
    with running_lorawan(broker, influx, tmp_path) as rig:
        produced: dict[str, list[float]] = {"trough": [], "soil": []}

        def started(times: int) -> Callable[[], bool]:
            return lambda: rig.agent.log().count(STARTED) >= times

        def kills() -> None:
            for times in range(1, 6):  # each kill once the agent is up (on a loaded machine)
                wait_for(started(times), what="the agent started")
                time.sleep(0.8)
                rig.agent.kill()
                time.sleep(0.3)
                rig.agent.start()

        flood(rig, 800, now_ms() - 3 * 3600_000, kills, produced)
        assert_sensor_once(influx, "water_level", "trough", produced["trough"])
        soil = assert_sensor_once(influx, "soil_moisture", "soil", produced["soil"])
        assert all(row["value"] == row["raw"] for row in soil)
        assert rig.agent.log().count(STARTED) == 6
    assert rig.quarantined() == []


def test_the_network_server_broker_restarted_loses_and_doubles_nothing(
    broker: Broker, influx: Influx, tmp_path: Path
) -> None:
    """The network server's Mosquitto restarts twice: once while the agent is stopped (the
    uplinks queued for its session are kept on disk), once under it while uplinks flow (the
    network server publishes again what the broker did not acknowledge)."""
    with running_lorawan(broker, influx, tmp_path) as rig:
        produced: dict[str, list[float]] = {"trough": [], "soil": []}
        start = now_ms() - 3 * 3600_000
        flood(rig, 100, start, lambda: None, produced)
        rig.agent.stop()
        flood(rig, 100, start + 100_000, lambda: None, produced)  # queued for the agent
        rig.ns.server.restart()
        rig.restart_agent()

        def outage() -> None:
            time.sleep(0.5)
            rig.ns.server.stop()
            time.sleep(2.0)
            rig.ns.server.start()

        flood(rig, 300, start + 200_000, outage, produced)
        assert rig.publisher.retries > 0  # the outage met the flow
        assert_sensor_once(influx, "water_level", "trough", produced["trough"])
        assert_sensor_once(influx, "soil_moisture", "soil", produced["soil"])
        assert rig.alive()
    assert "Traceback" not in rig.agent.log()


def test_duplicates_rejoins_and_garbage_are_stored_once_counted_and_quarantined(
    broker: Broker, influx: Influx, tmp_path: Path
) -> None:
    with running_lorawan(broker, influx, tmp_path) as rig:
        server = rig.server
        t = now_ms() - 2 * 3600_000
        expected: list[float] = []

        def soil(minute: int, moisture: float) -> Published:
            expected.append(moisture)
            return server.uplink("soil-node", 2, lse01_payload(moisture), t + minute * MIN)

        first = soil(0, 30.0)
        server.again(first)  # the same event twice
        second = soil(20, 29.5)
        soil(40, 29.0)
        server.again(first)  # and much later
        server.again(second)
        server.rejoin("soil-node", t + 50 * MIN)
        soil(60, 28.5)  # fCnt 0 again
        server.lose("soil-node", 2)
        soil(120, 28.0)  # fCnt 3: two lost
        server.devices["soil-node"].fcnt = 0  # a counter reset without a join event
        soil(140, 27.5)
        # garbage, each of a cause of its own
        device = server.devices["trough-node"]
        topic = f"application/{server.application}/device/{device.dev_eui}/event/up"
        good = ldds75_payload(625)
        server.uplink("trough-node", 3, good, t)  # wrong fPort
        server.uplink("trough-node", 2, good[:6], t + MIN)  # short
        server.uplink("trough-node", 2, good + b"\x00\x01", t + 2 * MIN)  # overlong
        server.uplink("trough-node", 2, ldds75_payload(20), t + 3 * MIN)  # no target
        stranger = server.add("stranger", "0000000000000bad")
        server.uplink("stranger", 2, good, t)  # unknown DevEUI
        server.send(topic, b'{"deviceInfo": {"devEui": ')  # bad JSON
        bad64 = server.uplink("trough-node", 2, good, t + 4 * MIN).payload
        server.send(topic, bad64.replace(b'"data": "', b'"data": "!!'))  # bad base64 (its retry)
        server.uplink("trough-node", 2, good, t + 5 * MIN)  # and the stream goes on
        assert stranger.fcnt == 1
        assert_sensor_once(influx, "soil_moisture", "soil", expected)
        (trough_a, trough_b) = sorted(
            (r["time"], r["value"]) for r in rows(influx, "water_level", "trough")
        )
        assert (trough_a, trough_b) == ((t + 4 * MIN, 50), (t + 5 * MIN, 50))
        causes = [cause for cause, _ in rig.quarantined()]
        assert causes == [
            "lorawan_wrong_fport",
            "lorawan_payload_length",
            "lorawan_payload_length",
            "lorawan_no_target",
            "lorawan_unknown_device",
            "lorawan_bad_json",
            "lorawan_bad_base64",
        ]
        details = dict(rig.quarantined()[:1])
        assert "fPort 3" in details["lorawan_wrong_fport"]

        def soil_health() -> dict[str, Any] | None:
            found = influx.query(
                "SELECT last(duplicates) AS duplicates, last(rejoins) AS rejoins, "
                "last(lost_uplinks) AS lost FROM device_health WHERE device = 'soil-node'"
            )
            return found[0] if found and found[0]["rejoins"] == 2 else None

        health = wait_for(soil_health, what="the soil probe's health")
        assert (health["duplicates"], health["lost"]) == (3, 2)
        status = wait_for(
            lambda: [
                r
                for r in influx.query("SELECT last(rejected_lines) AS r FROM agent_status")
                if r["r"] >= len(causes)
            ],
            what="the refusals counted in the agent status",
        )
        assert status
        assert rig.alive()
    assert "Traceback" not in rig.agent.log()


def check_config(tmp_path: Path, farm_file: Path, **settings: str) -> CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARMWATCH_")}
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "FARMWATCH_EDGE_FARM_FILE": str(farm_file),
            "FARMWATCH_EDGE_OUTBOX_PATH": str(tmp_path / "outbox.sqlite3"),
        }
    )
    env.update({f"FARMWATCH_EDGE_{k.upper()}": v for k, v in settings.items()})
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", "--check-config"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,  # the test reads the return code
    )


def test_check_config_checks_the_lorawan_devices_and_their_broker(tmp_path: Path) -> None:
    shipped = FARM_FILES / "chis-frailesca.toml"
    unread = check_config(tmp_path, shipped)
    assert unread.returncode == 0, unread.stderr
    assert "2 LoRaWAN devices but no network server broker" in unread.stdout
    remote = check_config(
        tmp_path, shipped, lorawan_mqtt_host="gateway.example.org", lorawan_mqtt_port="21883"
    )
    assert remote.returncode == 0, remote.stderr
    assert "LoRaWAN: 2 devices via chirpstack at gateway.example.org:21883" in remote.stdout
    assert "without TLS to the LoRaWAN network server" in remote.stdout
    missing_ca = check_config(
        tmp_path,
        shipped,
        lorawan_mqtt_host="gateway.example.org",
        lorawan_mqtt_tls_ca_file=str(tmp_path / "missing-ca.crt"),
    )
    assert missing_ca.returncode == 2, missing_ca.stdout
    bad = tmp_path / "bad-point.toml"
    bad.write_text(
        shipped.read_text(encoding="utf-8").replace(
            'point = "distance_mm"', 'point = "distance_cm"'
        )
    )
    wrong_point = check_config(tmp_path, bad)
    assert wrong_point.returncode == 2
    assert "has no point 'distance_cm'" in wrong_point.stderr
