"""The alerting service end to end on real servers: pty microcontroller → edge agent →
Mosquitto → alerter (own MQTT session) → SMS at the GSM modem emulator, plus InfluxDB history,
restarts, two-way SMS and the single-sender lease."""

from __future__ import annotations

import time
from pathlib import Path

from support.alerts import modem_client, start_alerts
from support.clocks import SteppingClock
from support.harness import farm_config, start_agent
from support.servers import Broker, Influx
from support.waiting import wait_for

from collector.alerts.store import AlertStore
from farmwatch_emulators.gsm_modem import GsmModemEmulator
from farmwatch_emulators.scenario import raw_for
from farmwatch_shared.clock import SystemClock
from farmwatch_shared.contract import (
    Reading,
    ReadingBatch,
    SensorKind,
    encode_batch,
    readings_topic,
)
from farmwatch_shared.farm.model import WaterLevelSensor
from farmwatch_shared.influx import InfluxV1Writer
from farmwatch_shared.sms_pdu import DCS_GSM7

T0 = 1_795_000_000_000
MIN = 60_000
FARM = "oax-mixteca"
PRIMARY, ESCALATION = "+529510000001", "+529510000002"
# SMS-SUBMIT header for +529510000001: first octet 11, MR 00, 12 digits international, swapped
# BCD digits, PID 00, DCS 00 (GSM 7-bit), validity AA (4 days)
SUBMIT_TO_PRIMARY_GSM7 = "0011000C9125590100001000" + "00AA"


def test_trough_drains_alert_sms_then_resolution_sms_and_history_in_influx(
    broker: Broker, influx: Influx, tmp_path: Path, modem_emulator: GsmModemEmulator
) -> None:
    config = farm_config(FARM)  # the shipped farm file: trough-north-low, 25 %, 35 %, 600 s
    trough = next(s for s in config.sensors if s.id == "trough-north")
    assert isinstance(trough, WaterLevelSensor)
    writer = InfluxV1Writer(influx.url, influx.database)
    writer.ensure_database()
    clock = SteppingClock(T0)
    alerts = start_alerts(
        broker,
        {FARM: config},
        tmp_path / "alerts.sqlite3",
        clock,
        modem=modem_client(modem_emulator),
        history_writer=writer,
    )
    agent = start_agent(broker, tmp_path, FARM, clock=clock)
    store = AlertStore(tmp_path / "alerts.sqlite3", clock)
    try:
        steps = [(0, 50.0), (1, 20.0), (6, 19.0), (11, 19.0)]  # below 25 % from minute 1
        for minute, pct in steps:
            clock.now = T0 + minute * MIN
            agent.mcu.sample(trough.channel, raw_for(trough, pct))
            wait_for(lambda: (store.latest(FARM, "trough-north") or (0,))[0] == clock.now)
            if minute < 11:
                assert modem_emulator.sent == []  # for_s = 600: not yet
        (alert,) = wait_for(lambda: modem_emulator.sent, what="alert SMS at the modem")
        assert alert.to == PRIMARY
        assert alert.text == (
            "ALERTA 1 Rancho modelo La Mixteca: Bebedero potrero norte 19% (umbral 25%). "
            "Responda OK 1"
        )
        (part,) = alert.parts
        assert part.dcs == DCS_GSM7
        assert part.concat is None
        assert part.pdu.startswith(SUBMIT_TO_PRIMARY_GSM7)
        assert int(
            part.pdu[len(SUBMIT_TO_PRIMARY_GSM7) : len(SUBMIT_TO_PRIMARY_GSM7) + 2], 16
        ) == len(alert.text)

        for minute, pct in [(20, 30.0), (21, 40.0), (24, 41.0)]:  # 30 %: inside the hysteresis
            clock.now = T0 + minute * MIN
            agent.mcu.sample(trough.channel, raw_for(trough, pct))
            wait_for(
                lambda: (store.latest(FARM, "trough-north") or (0,))[0] == clock.now,
                what=f"reading of minute {minute} stored",
            )
        assert len(modem_emulator.sent) == 1  # recovery has held 3 of the 5 minutes needed
        clock.now = T0 + 26 * MIN
        wait_for(lambda: len(modem_emulator.sent) == 2, what="resolution SMS")
        assert modem_emulator.sent[1].to == PRIMARY
        assert modem_emulator.sent[1].text == (
            "RESUELTO 1 Rancho modelo La Mixteca: Bebedero potrero norte 41% (umbral 25%). "
            "Normal de nuevo."
        )
        rows = wait_for(
            lambda: len(r := influx.query('SELECT * FROM "alert_event" GROUP BY *')) == 3 and r,
            what="alert events in InfluxDB",
        )
        assert [
            (r["state"], r["from_state"], r["time"]) for r in sorted(rows, key=lambda r: r["time"])
        ] == [
            ("pending", "ok", T0 + 1 * MIN),
            ("firing", "pending", T0 + 11 * MIN),
            ("resolved", "firing", T0 + 26 * MIN),
        ]
        sms = wait_for(
            lambda: len(r := influx.query('SELECT * FROM "sms_sent" GROUP BY *')) == 2 and r,
            what="sms_sent in InfluxDB",
        )
        assert sorted((r["kind"], r["channel"], r["to"]) for r in sms) == [
            ("firing", "modem", "…0001"),
            ("resolved", "modem", "…0001"),
        ]
    finally:
        store.close()
        agent.stop()
        alerts.stop()


def _publish(
    broker: Broker, clock: SteppingClock, values: list[tuple[int, float]], seq0: int
) -> None:
    client = broker.client(FARM, "test-publisher")
    readings = [
        Reading(
            seq0 + i, "trough-north", SensorKind.WATER_LEVEL, T0 + m * MIN, v, "%", 0.0, v * 8.64
        )
        for i, (m, v) in enumerate(values)
    ]
    clock.now = T0 + values[-1][0] * MIN
    info = client.publish(
        readings_topic(FARM, "pi-1"), encode_batch(ReadingBatch(1, FARM, "pi-1", readings)), qos=1
    )
    info.wait_for_publish(10)
    client.loop_stop()
    client.disconnect()


def _stored_until(db: Path, ts: int) -> bool:
    store = AlertStore(db, SystemClock())
    try:
        latest = store.latest(FARM, "trough-north")
        return latest is not None and latest[0] >= ts
    finally:
        store.close()


def _fire(broker: Broker, clock: SteppingClock, db: Path) -> None:
    """Trough at 19 % at T0; 11 minutes later the shipped rule (for_s = 600) fires."""
    _publish(broker, clock, [(0, 19.0)], 0)
    wait_for(lambda: _stored_until(db, T0), what="reading stored")
    clock.now = T0 + 11 * MIN


def test_restart_while_the_modem_is_down_sends_the_alert_once(
    broker: Broker, tmp_path: Path, modem_emulator: GsmModemEmulator
) -> None:
    config = farm_config(FARM)
    clock = SteppingClock(T0)
    db = tmp_path / "alerts.sqlite3"
    modem_emulator.registered = False
    alerts = start_alerts(broker, {FARM: config}, db, clock, modem=modem_client(modem_emulator))
    _fire(broker, clock, db)
    wait_for(lambda: alerts.problems.count("modem_no_network") >= 1, what="send attempt")
    alerts.stop()  # the process stops with the alert queued
    assert modem_emulator.sent == []

    modem_emulator.registered = True
    clock.now += 60_000  # the retry is due
    alerts = start_alerts(broker, {FARM: config}, db, clock, modem=modem_client(modem_emulator))
    try:
        wait_for(lambda: modem_emulator.sent, what="queued alert delivered after restart")
        _publish(broker, clock, [(0, 20.0), (12, 18.0)], 0)  # a redelivered reading and a new one
        wait_for(lambda: _stored_until(db, T0 + 12 * MIN), what="readings stored")
        clock.now = T0 + 40 * MIN
        time.sleep(0.3)  # several engine ticks and delivery rounds
        assert [m.text.split(":")[0] for m in modem_emulator.sent] == [
            "ALERTA 1 Rancho modelo La Mixteca"
        ]
    finally:
        alerts.stop()


def test_two_way_sms_ack_levels_and_unknown_numbers(
    broker: Broker, tmp_path: Path, modem_emulator: GsmModemEmulator
) -> None:
    shipped = farm_config(FARM)
    # without the agent-silent rule: the test moves the clock hours ahead with no agent running
    config = shipped.model_copy(
        update={"alerts": [r for r in shipped.alerts if r.type != "silent"]}
    )
    clock = SteppingClock(T0)
    alerts = start_alerts(
        broker,
        {FARM: config},
        tmp_path / "alerts.sqlite3",
        clock,
        modem=modem_client(modem_emulator),
    )
    try:
        _fire(broker, clock, tmp_path / "alerts.sqlite3")
        (alert,) = wait_for(lambda: modem_emulator.sent, what="alert")
        assert alert.text.startswith("ALERTA 1 ")

        modem_emulator.receive_sms("+525555555555", "OK 1")  # not a contact of any farm
        wait_for(lambda: alerts.problems.count("sms_from_unknown_number") == 1, what="ignored")
        modem_emulator.receive_sms(PRIMARY, "ok 1")
        wait_for(lambda: len(modem_emulator.sent) == 2, what="ack reply")
        assert modem_emulator.sent[1].to == PRIMARY
        assert modem_emulator.sent[1].text == "Alerta 1 recibida, gracias. No se escalará."

        clock.now += 2 * 3_600_000  # past escalate_after_s (1 h): acknowledged, so nobody else
        modem_emulator.receive_sms(ESCALATION, "NIVEL")
        wait_for(lambda: len(modem_emulator.sent) >= 3, what="levels reply")
        time.sleep(0.3)  # time for an escalation SMS, if one were (wrongly) sent
        assert len(modem_emulator.sent) == 3
        levels = modem_emulator.sent[2]
        assert levels.to == ESCALATION
        assert levels.text == (
            "NIVEL Rancho modelo La Mixteca: Tanque de captación sin datos; "
            "Bebedero potrero norte 19%"
        )
        assert levels.encoding == "ucs2"  # "ó" in the tank's label, contact without ascii_only
        assert all(m.to != ESCALATION or m is levels for m in modem_emulator.sent)
        assert modem_emulator.stored == 0
        assert alerts.problems.count("sms_from_unknown_number") == 1
    finally:
        alerts.stop()


def test_only_the_lease_holder_sends(
    broker: Broker, tmp_path: Path, modem_emulator: GsmModemEmulator
) -> None:
    config = farm_config(FARM)
    clock = SteppingClock(T0)
    db = tmp_path / "alerts.sqlite3"
    first = start_alerts(
        broker, {FARM: config}, db, clock, modem=modem_client(modem_emulator), holder="a"
    )
    second = start_alerts(
        broker,
        {FARM: config},
        db,
        clock,
        modem=modem_client(modem_emulator),
        holder="b",
        wait_leader=False,
    )
    try:
        assert not second.service.leader.wait(0.5)
        first.stop()  # releases the lease; the standby takes over the same MQTT session
        assert second.service.leader.wait(10)
        assert second.service.consumer.wait_connected(10)
        assert second.service.subscribed.wait(10)
        _fire(broker, clock, db)
        wait_for(lambda: modem_emulator.sent, what="alert from the new holder")
        assert len(modem_emulator.sent) == 1
    finally:
        second.stop()
