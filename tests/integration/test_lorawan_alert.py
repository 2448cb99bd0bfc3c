"""A distant LoRaWAN trough that drains below its threshold alerts by SMS through an LTE-only
modem (issue 13, acceptance 3): the emulated network server's ChirpStack uplinks (Dragino
LDDS75 distances) → a real ``farmwatch-edge`` subscribed to the network server's broker → the
farm broker → the alerting service → the modem emulator playing a SIMCom SIM7600 on a network
with no circuit-switched registration (``+CREG: 0,0``, ``+CGREG: 0,0``, ``+CEREG: 0,1``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.alerts import modem_client, start_alerts
from support.lorawan import FARM, running_lorawan
from support.servers import Broker, Influx
from support.waiting import wait_for

from collector.alerts.modem_profiles import AUTO
from farmwatch_emulators.gsm_modem import SIM7600, GsmModemEmulator
from farmwatch_emulators.lorawan import ldds75_payload
from farmwatch_emulators.pty_link import PtyLink
from farmwatch_shared.clock import SystemClock
from farmwatch_shared.farm.model import load_farm_config

PRIMARY = "+529610000001"
RULES = f"""
[[alerts]]
id = "trough-low"
type = "level_below"
sensor = "trough"
threshold_pct = 25
recover_above_pct = 35
for_s = 0
resolve_for_s = 0

[[contacts]]
name = "Encargado"
phone = "{PRIMARY}"
"""
MOUNT_MM, HEIGHT_MM = 900, 550
"""The test farm's trough (support/lorawan.py): ultrasonic sensor 900 mm over a 550 mm trough."""


def distance_for(level_pct: float) -> int:
    """The LDDS75 distance (mm) that reads as ``level_pct`` in that trough."""
    return round(MOUNT_MM - HEIGHT_MM * level_pct / 100)


@pytest.fixture
def lte_modem() -> Iterator[GsmModemEmulator]:
    emulator = GsmModemEmulator(PtyLink(), identity=SIM7600, network="lte")
    emulator.start()
    yield emulator
    emulator.stop()
    emulator.link.close()


def test_a_lorawan_trough_below_its_threshold_alerts_by_sms_over_lte_only(
    broker: Broker, influx: Influx, tmp_path: Path, lte_modem: GsmModemEmulator
) -> None:
    with running_lorawan(broker, influx, tmp_path, "chirpstack") as rig:
        farm_file = tmp_path / "lorawan-farm.toml"
        alerting = tmp_path / "alerting-farm.toml"
        alerting.write_text(farm_file.read_text() + RULES)
        config = load_farm_config(alerting)
        clock = SystemClock()
        alerts = start_alerts(
            broker,
            {FARM: config},
            tmp_path / "alerts.sqlite3",
            clock,
            modem=modem_client(lte_modem, profile=AUTO),
        )
        try:
            now = clock.now_ms()
            for minute, level in enumerate((60.0, 40.0, 19.0)):
                rig.server.uplink(
                    "trough-node",
                    2,
                    ldds75_payload(distance_for(level), battery_mv=3050),
                    now - (5 - minute) * 60_000,
                )
            (alert,) = wait_for(lambda: lte_modem.sent, timeout_s=60, what="the alert SMS")
            assert alert.to == PRIMARY
            assert alert.text == "ALERTA 1 LoRaWAN: trough 19% (umbral 25%). Responda OK 1"
            status = alerts.service.modem_status
            assert status is not None
            assert (status.profile, status.via) == ("simcom-lte", "CEREG")
            # the trough refilled: the resolution goes out the same way
            rig.server.uplink(
                "trough-node", 2, ldds75_payload(distance_for(80.0), battery_mv=3050), now
            )
            wait_for(lambda: len(lte_modem.sent) == 2, timeout_s=60, what="the resolution SMS")
            assert lte_modem.sent[1].text == (
                "RESUELTO 1 LoRaWAN: trough 80% (umbral 25%). Normal de nuevo."
            )
            assert rig.alive()
        finally:
            alerts.stop()
