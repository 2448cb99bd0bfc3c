"""The alerting service against what outside input and its own threads can do to it, on real
servers: a retained status that breaks decoding (finding 1), a malformed SMS on the SIM (2), an
alphanumeric sender posing as a contact (20), and a worker thread that dies (the supervisor:
the process exits 70 within seconds)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

from support.alerts import ACCOUNT_SID, AUTH_TOKEN, FakeGateway, modem_client, start_alerts
from support.clocks import SteppingClock
from support.harness import farm_config
from support.paths import ALERTS_USER, FARM_FILES
from support.servers import Broker
from support.waiting import wait_for

from collector.alerts.store import AlertStore
from farmwatch_emulators.gsm_modem import GsmModemEmulator
from farmwatch_shared.clock import SystemClock
from farmwatch_shared.contract import (
    Reading,
    ReadingBatch,
    SensorKind,
    encode_batch,
    readings_topic,
    status_topic,
)

T0 = 1_795_000_000_000
FARM = "oax-mixteca"
PRIMARY = "+529510000001"
TRUNCATED_UDH = "00440D912551513254766800006211291200000003050003"
DEEP = (
    b'{"v":1,"farm":"oax-mixteca","agent":"pi-1","state":"online","x":'
    + b"[" * 1000
    + b"]" * 1000
    + b"}"
)
HUGE_TS = b'{"v":1,"farm":"oax-mixteca","agent":"pi-2","state":"online","ts":18446744073709551615}'


def _reading_batch(ts: int, value: float) -> bytes:
    reading = Reading(0, "trough-north", SensorKind.WATER_LEVEL, ts, value, "%", 0.0, value * 8.64)
    return encode_batch(ReadingBatch(1, FARM, "pi-1", [reading]))


def _is_latest(db: Path, ts: int) -> bool:
    return _latest(db) == ts


def _latest(db: Path) -> int | None:
    store = AlertStore(db, SystemClock())
    try:
        latest = store.latest(FARM, "trough-north")
        return latest[0] if latest is not None else None
    finally:
        store.close()


def _quarantined(db: Path, source: str) -> list[dict[str, object]]:
    store = AlertStore(db, SystemClock())
    try:
        return store.quarantined(source)
    finally:
        store.close()


def test_retained_statuses_that_break_decoding_or_the_engine_are_quarantined(
    broker: Broker, tmp_path: Path
) -> None:
    db = tmp_path / "alerts.sqlite3"
    clock = SteppingClock(T0)
    farm = broker.client(FARM, "test-farm")
    try:
        # any farm user may publish these on its own status topics; they stay retained
        for topic, payload in (
            (status_topic(FARM, "pi-1"), DEEP),
            (status_topic(FARM, "pi-2"), HUGE_TS),
        ):
            farm.publish(topic, payload, qos=1, retain=True).wait_for_publish(10)
        for start in range(2):  # and are redelivered on every start
            alerts = start_alerts(broker, {FARM: farm_config(FARM)}, db, clock)
            try:
                ts = T0 + start * 60_000
                farm.publish(readings_topic(FARM, "pi-1"), _reading_batch(ts, 50.0), qos=1)
                wait_for(partial(_is_latest, db, ts), what="the reading behind them")
                assert alerts.thread.is_alive()
            finally:
                alerts.stop()
        rows = _quarantined(db, "mqtt")
        assert len(rows) == 4
        assert {(r["origin"], r["payload"]) for r in rows} == {
            (status_topic(FARM, "pi-1"), DEEP),
            (status_topic(FARM, "pi-2"), HUGE_TS),
        }
        assert all(r["cause"] and r["detail"] for r in rows)
    finally:
        for agent in ("pi-1", "pi-2"):
            farm.publish(status_topic(FARM, agent), b"", qos=1, retain=True).wait_for_publish(10)
        farm.disconnect()


def test_a_malformed_sms_is_quarantined_and_the_ok_behind_it_is_handled(
    broker: Broker, tmp_path: Path, modem_emulator: GsmModemEmulator
) -> None:
    db = tmp_path / "alerts.sqlite3"
    config = farm_config(FARM)
    config = config.model_copy(update={"alerts": [r for r in config.alerts if r.type != "silent"]})
    # waiting on the SIM when the service starts: the start-up sweep reads both
    modem_emulator.receive_pdu(TRUNCATED_UDH)
    modem_emulator.receive_sms(PRIMARY, "NIVEL")
    alerts = start_alerts(
        broker, {FARM: config}, db, SteppingClock(T0), modem=modem_client(modem_emulator)
    )
    try:
        (reply,) = wait_for(lambda: modem_emulator.sent, what="the reply to NIVEL")
        assert reply.to == PRIMARY
        assert reply.text.startswith("NIVEL Rancho modelo La Mixteca:")
        wait_for(lambda: modem_emulator.stored == 0, what="both deleted from the SIM")
        (bad,) = _quarantined(db, "sms")
        assert bad["payload"] == TRUNCATED_UDH.encode()
        assert bad["cause"] == "unreadable_sms"
        # and one arriving while it runs
        modem_emulator.receive_pdu(TRUNCATED_UDH[:-2])
        modem_emulator.receive_sms(PRIMARY, "LEVEL")
        wait_for(lambda: len(modem_emulator.sent) == 2, what="the reply to LEVEL")
        assert len(_quarantined(db, "sms")) == 2
        assert alerts.thread.is_alive()
    finally:
        alerts.stop()


def test_an_alphanumeric_sender_id_cannot_acknowledge(
    broker: Broker, tmp_path: Path, modem_emulator: GsmModemEmulator
) -> None:
    db = tmp_path / "alerts.sqlite3"
    shipped = farm_config(FARM)
    posing = "+5295100001"  # 11 characters: fits an alphanumeric sender ID
    contacts = tuple(
        c.model_copy(update={"phone": posing}) if c.phone == PRIMARY else c
        for c in shipped.contacts
    )
    config = shipped.model_copy(
        update={"contacts": contacts, "alerts": [r for r in shipped.alerts if r.type != "silent"]}
    )
    alerts = start_alerts(
        broker, {FARM: config}, db, SteppingClock(T0), modem=modem_client(modem_emulator)
    )
    try:
        modem_emulator.receive_sms(posing, "NIVEL", sender_id=True)
        wait_for(lambda: alerts.problems.count("sms_from_sender_id") == 1, what="ignored")
        modem_emulator.receive_sms(posing, "LEVEL")  # from the contact's real number
        (reply,) = wait_for(lambda: modem_emulator.sent, what="the reply to the contact")
        assert reply.to == posing
        time.sleep(0.3)
        assert len(modem_emulator.sent) == 1
        store = AlertStore(db, SystemClock())
        try:
            assert [m["outcome"] for m in store.inbox()] == ["ignored_not_a_number", "levels"]
        finally:
            store.close()
    finally:
        alerts.stop()


def test_a_dead_worker_makes_the_process_exit_70_within_seconds(
    broker: Broker, tmp_path: Path, gateway: FakeGateway
) -> None:
    db = tmp_path / "alerts.sqlite3"
    token = tmp_path / "token"
    token.write_text(AUTH_TOKEN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARMWATCH_")}
    env.update(
        {
            "FARMWATCH_ALERTS_FARM_DIR": str(FARM_FILES),
            "FARMWATCH_ALERTS_STATE_DB": str(db),
            "FARMWATCH_ALERTS_MQTT_HOST": "127.0.0.1",
            "FARMWATCH_ALERTS_MQTT_PORT": str(broker.port),
            "FARMWATCH_ALERTS_MQTT_USERNAME": ALERTS_USER,
            "FARMWATCH_ALERTS_MQTT_PASSWORD": broker.passwords[ALERTS_USER],
            "FARMWATCH_ALERTS_CLIENT_ID": "farmwatch-alerts-supervised",
            "FARMWATCH_ALERTS_GATEWAY_URL": gateway.url,
            "FARMWATCH_ALERTS_GATEWAY_ACCOUNT_SID": ACCOUNT_SID,
            "FARMWATCH_ALERTS_GATEWAY_AUTH_TOKEN_FILE": str(token),
            "FARMWATCH_ALERTS_GATEWAY_FROM": "+15005550006",
            "FARMWATCH_ALERTS_API_LISTEN": "",  # no API: this test is about the workers
        }
    )
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "farmwatch-alerts")],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: db.exists() and _has_lease(db), what="the service took the lease")
        # the SD card corrupts the database under the running service: its next transaction
        # fails with "file is not a database" and the worker running it dies
        other = sqlite3.connect(db, isolation_level=None)
        other.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        other.execute("INSERT OR REPLACE INTO meta VALUES ('poke', '1')")
        other.close()
        with db.open("r+b") as file:
            file.write(b"\xff" * db.stat().st_size)
        started = time.monotonic()
        code = process.wait(timeout=20)
        elapsed = time.monotonic() - started
        stderr = process.stderr.read() if process.stderr else ""
        assert code == 70, stderr[-2000:]
        assert elapsed < 10
        assert "died" in stderr
        assert "Hilo" in stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _has_lease(db: Path) -> bool:
    try:
        connection = sqlite3.connect(db)
        try:
            return bool(connection.execute("SELECT 1 FROM lease").fetchall())
        finally:
            connection.close()
    except sqlite3.Error:
        return False
