"""LTE modems (issue 13): the modem channel against the emulator in LTE-only mode (``+CREG:
0,0``, ``+CGREG: 0,0``, ``+CEREG: 0,1``) as a SIMCom SIM7600 and a Quectel EG25, on a pty with
pyserial; then the alerting service end to end on real Mosquitto (and InfluxDB for the
``modem_health`` point): the alert goes out over LTE, the reply is read from the vendor's
storage, and with no registration anywhere the alert waits and goes out once."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.alerts import modem_client, start_alerts
from support.clocks import SteppingClock
from support.harness import farm_config
from support.paths import FARM_FILES
from support.servers import Broker, Influx
from support.waiting import wait_for

from collector.alerts.channels import ChannelError
from collector.alerts.cli import main
from collector.alerts.modem import IncomingSms
from collector.alerts.modem_profiles import (
    AUTO,
    CLASSIC_2G,
    GENERIC_3GPP,
    QUECTEL_LTE,
    SIMCOM_LTE,
    ModemProfile,
)
from collector.alerts.modem_status import Registration, SignalReport
from collector.alerts.store import AlertStore
from farmwatch_emulators.gsm_modem import EG25, SIM800, SIM7600, GsmModemEmulator, ModemIdentity
from farmwatch_emulators.pty_link import PtyLink
from farmwatch_shared.clock import SystemClock
from farmwatch_shared.contract import (
    Reading,
    ReadingBatch,
    SensorKind,
    encode_batch,
    readings_topic,
)
from farmwatch_shared.influx import InfluxV1Writer

T0 = 1_795_000_000_000
MIN = 60_000
FARM = "oax-mixteca"
PHONE = "+529510000001"
PRIMARY = "+529510000001"

MakeEmulator = Callable[..., GsmModemEmulator]

LTE = [
    pytest.param(SIM7600, SIMCOM_LTE, "ME", id="simcom-sim7600"),
    pytest.param(EG25, QUECTEL_LTE, "SM", id="quectel-eg25"),
]


@pytest.fixture
def make_emulator() -> Iterator[MakeEmulator]:
    """Modem emulators on ptys, LTE-only unless told otherwise; stopped after the test."""
    started: list[GsmModemEmulator] = []

    def make(identity: ModemIdentity, **attributes: Any) -> GsmModemEmulator:
        attributes.setdefault("network", "lte")
        emulator = GsmModemEmulator(PtyLink(), identity=identity, **attributes)
        emulator.start()
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        emulator.stop()
        emulator.link.close()


def _init_commands(storage: str) -> list[str]:
    return [
        "AT",
        "ATE0",
        "AT+CMEE=1",
        "AT+CGMM",
        "AT+CPIN?",
        "AT+CREG?",
        "AT+CGREG?",
        "AT+CEREG?",
        "AT+CMGF=0",
        f'AT+CPMS="{storage}","{storage}","{storage}"',
        "AT+CNMI=2,1,0,0,0",
    ]


@pytest.mark.parametrize(("identity", "profile", "storage"), LTE)
def test_lte_only_network_sends_and_reports_the_eps_registration(
    make_emulator: MakeEmulator, identity: ModemIdentity, profile: ModemProfile, storage: str
) -> None:
    emulator = make_emulator(identity)
    modem = modem_client(emulator, profile=AUTO)
    modem.send(PHONE, "Nivel bajo en el bebedero: 18%")
    assert emulator.commands == [*_init_commands(storage), "AT+CMGS=41"]
    assert [(m.to, m.text) for m in emulator.sent] == [(PHONE, "Nivel bajo en el bebedero: 18%")]
    assert modem.profile is profile
    status = modem.status
    assert (status.profile, status.model, status.via) == (profile.name, identity.model, "CEREG")
    assert status.registrations == (
        Registration("CREG", 0, False, 0),
        Registration("CGREG", 0, False, 0),
        Registration("CEREG", 1, False, 0),
    )
    status = modem.refresh_status()
    assert status.signal == SignalReport(-71, None, -91, -10.0)  # CSQ 21; CESQ rsrq 20, rsrp 50
    assert status.checked_ms is not None
    assert emulator.commands[-2:] == ["AT+CSQ", "AT+CESQ"]


def test_an_unknown_creg_stat_and_roaming_are_reported(make_emulator: MakeEmulator) -> None:
    emulator = make_emulator(EG25, lte_creg_stat=4, roaming=True)
    modem = modem_client(emulator, profile=QUECTEL_LTE)
    modem.send(PHONE, "uno")
    creg, _, cereg = modem.status.registrations
    assert (creg.stat, creg.registered) == (4, False)
    assert (cereg.stat, cereg.registered, cereg.roaming) == (5, True, True)


def test_the_classic_profile_refuses_an_lte_only_network(make_emulator: MakeEmulator) -> None:
    """What the alerting service did before issue 13, whatever the modem."""
    emulator = make_emulator(SIM7600)
    modem = modem_client(emulator, profile=CLASSIC_2G)
    with pytest.raises(ChannelError) as failure:
        modem.send(PHONE, "uno")
    assert failure.value.cause == "no_network"
    assert "+CREG 0" in failure.value.detail
    assert "+CGREG 0" in failure.value.detail
    assert "AT+CEREG?" not in emulator.commands
    assert emulator.sent == []


def test_auto_detects_the_2g_modem_and_asks_only_what_it_knows(
    make_emulator: MakeEmulator,
) -> None:
    emulator = make_emulator(SIM800, network="gsm")
    modem = modem_client(emulator, profile=AUTO)
    modem.send(PHONE, "uno")
    assert modem.profile is CLASSIC_2G
    assert emulator.commands[3:6] == ["AT+CGMM", "AT+CPIN?", "AT+CREG?"]
    status = modem.refresh_status()
    assert status.via == "CREG"
    assert status.signal == SignalReport(-71, None)
    assert "AT+CEREG?" not in emulator.commands
    assert "AT+CESQ" not in emulator.commands
    assert not any(c.startswith("AT+CPMS") for c in emulator.commands)


def test_commands_a_modem_does_not_know_are_not_failures(make_emulator: MakeEmulator) -> None:
    """The generic profile on a 2G modem: +CEREG and +CESQ answer ERROR."""
    emulator = make_emulator(SIM800, network="gsm", registered=False)
    modem = modem_client(emulator, profile=GENERIC_3GPP)
    with pytest.raises(ChannelError) as failure:
        modem.send(PHONE, "uno")
    assert failure.value.cause == "no_network"
    assert "+CREG 2" in failure.value.detail
    assert "+CGREG 2" in failure.value.detail
    assert "AT+CEREG?" in emulator.commands
    emulator.registered = True
    modem.send(PHONE, "dos")
    modem.refresh_status()
    modem.refresh_status()
    assert emulator.commands.count("AT+CESQ") == 1  # refused once: not asked again
    assert [m.text for m in emulator.sent] == ["dos"]


@pytest.mark.parametrize(("identity", "profile", "storage"), LTE)
def test_incoming_sms_in_the_vendor_storage_form(
    make_emulator: MakeEmulator, identity: ModemIdentity, profile: ModemProfile, storage: str
) -> None:
    emulator = make_emulator(identity)
    modem = modem_client(emulator, profile=profile)
    modem.send(PHONE, "hola")  # initialises: storage, +CNMI
    assert emulator.receive_sms(PHONE, "OK 1") == 0  # announced as +CMTI: "<storage>",0
    accepted: list[IncomingSms] = []
    got = wait_for(lambda: modem.poll_incoming(accept=accepted.append), what="+CMTI")
    assert [(m.sender, m.text, m.location) for m in got] == [
        (PHONE, "OK 1", f"{storage.lower()}:0")
    ]
    assert accepted == got
    assert "AT+CMGR=0" in emulator.commands
    assert "AT+CMGD=0" in emulator.commands
    assert emulator.stored == 0
    # announced in the other storage (a class 2 message goes to the SIM, whatever <mem3> says)
    other = "SM" if storage == "ME" else "ME"
    assert emulator.receive_sms("+529510000002", "NIVEL", storage=other) == 0
    got = wait_for(modem.poll_incoming, what=f'+CMTI: "{other}",0')
    assert [(m.text, m.location) for m in got] == [("NIVEL", f"{other.lower()}:0")]
    assert f'AT+CPMS="{other}"' in emulator.commands
    assert emulator.stored == 0
    # the sweep lists the profile's storage again
    emulator.receive_sms("+529510000003", "¿qué pasó?")
    swept = modem.poll_incoming(sweep=True)
    assert [(m.text, m.location) for m in swept] == [("¿qué pasó?", f"{storage.lower()}:0")]
    assert emulator.commands[-3:] == [f'AT+CPMS="{storage}"', "AT+CMGL=4", "AT+CMGD=0"]
    assert emulator.stored == 0


def test_registration_urcs_and_location_answers(make_emulator: MakeEmulator) -> None:
    """A modem left reporting registration (``AT+CEREG=2`` saved in its NVRAM)."""
    emulator = make_emulator(EG25, urc_mode=2)
    modem = modem_client(emulator, profile=QUECTEL_LTE)
    modem.send(PHONE, "uno")
    assert modem.status.registration("CEREG") == Registration(
        "CEREG", 1, False, 2, "1A2B", "01A2D001", 7
    )
    # roaming now: "+CEREG: 5,..." arrives on its own; still registered, no new initialisation
    emulator.set_registered(True, roaming=True)
    time.sleep(0.2)
    before = len(emulator.commands)
    modem.send(PHONE, "dos")
    assert emulator.commands[before].startswith("AT+CMGS=")
    assert modem.status.registration("CEREG") == Registration(
        "CEREG", 5, True, None, "1A2B", "01A2D001", 7
    )
    # the network goes ("+CEREG: 2"): the next send checks again instead of trying
    emulator.set_registered(False)
    time.sleep(0.2)  # the pty hands the code over asynchronously: let it arrive first
    before = len(emulator.commands)
    with pytest.raises(ChannelError) as failure:
        modem.send(PHONE, "tres")
    assert failure.value.cause == "no_network"
    assert emulator.commands[before] == "AT"
    assert not any(c.startswith("AT+CMGS") for c in emulator.commands[before:])
    emulator.set_registered(True)
    modem.send(PHONE, "cuatro")
    assert [m.text for m in emulator.sent] == ["uno", "dos", "cuatro"]


@pytest.mark.parametrize(("identity", "profile", "storage"), LTE)
def test_a_reset_prints_the_vendor_boot_lines_and_the_storage_is_set_again(
    make_emulator: MakeEmulator, identity: ModemIdentity, profile: ModemProfile, storage: str
) -> None:
    emulator = make_emulator(identity)
    modem = modem_client(emulator, profile=AUTO)
    modem.send(PHONE, "uno")
    emulator.reset()  # RDY, then the vendor's +CPIN/SMS DONE/+QIND lines
    wait_for(lambda: emulator.resets == 1)
    modem.send(PHONE, "dos")
    assert modem.resets_seen == 1  # one restart, however many boot lines
    cpms = f'AT+CPMS="{storage}","{storage}","{storage}"'
    assert emulator.commands.count(cpms) == 2
    emulator.receive_sms(PHONE, "OK 1")
    got = wait_for(modem.poll_incoming, what="+CMTI after the reset")
    assert [(m.text, m.location) for m in got] == [("OK 1", f"{storage.lower()}:0")]
    assert modem.profile is profile


# -- the alerting service on real servers ----------------------------------------------------


def _publish(broker: Broker, clock: SteppingClock, minute: int, value: float, seq: int) -> None:
    client = broker.client(FARM, "test-publisher")
    reading = Reading(
        seq, "trough-north", SensorKind.WATER_LEVEL, T0 + minute * MIN, value, "%", 0.0, value * 8
    )
    clock.now = max(clock.now, T0 + minute * MIN)
    info = client.publish(
        readings_topic(FARM, "pi-1"),
        encode_batch(ReadingBatch(1, FARM, "pi-1", [reading])),
        qos=1,
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
    _publish(broker, clock, 0, 19.0, 0)
    wait_for(lambda: _stored_until(db, T0), what="reading stored")
    clock.now = T0 + 11 * MIN


def _config() -> Any:
    shipped = farm_config(FARM)
    # without the agent-silent rule: the tests move the clock ahead with no agent running
    return shipped.model_copy(update={"alerts": [r for r in shipped.alerts if r.type != "silent"]})


@pytest.mark.parametrize(("identity", "profile", "storage"), LTE)
def test_alert_over_lte_only_and_the_reply_read_from_the_vendor_storage(
    broker: Broker,
    influx: Influx,
    tmp_path: Path,
    make_emulator: MakeEmulator,
    identity: ModemIdentity,
    profile: ModemProfile,
    storage: str,
) -> None:
    emulator = make_emulator(identity)  # +CREG: 0,0  +CGREG: 0,0  +CEREG: 0,1
    writer = InfluxV1Writer(influx.url, influx.database)
    writer.ensure_database()
    clock = SteppingClock(T0)
    db = tmp_path / "alerts.sqlite3"
    alerts = start_alerts(
        broker,
        {FARM: _config()},
        db,
        clock,
        modem=modem_client(emulator, profile=AUTO),
        history_writer=writer,
    )
    try:
        _fire(broker, clock, db)
        (alert,) = wait_for(lambda: emulator.sent, what="alert SMS over LTE")
        assert alert.to == PRIMARY
        assert alert.text == (
            "ALERTA 1 Rancho modelo La Mixteca: Bebedero potrero norte 19% (umbral 25%). "
            "Responda OK 1"
        )
        emulator.receive_sms(PRIMARY, "OK 1")  # +CMTI: "ME",0 (SIMCom) / "SM",0 (Quectel)
        wait_for(lambda: len(emulator.sent) == 2, what="ack reply")
        assert emulator.sent[1].text == "Alerta 1 recibida, gracias. No se escalará."
        assert "AT+CMGR=0" in emulator.commands
        wait_for(lambda: emulator.stored == 0, what=f"deleted from {storage}")
        status = alerts.service.modem_status
        assert status is not None
        assert (status.profile, status.via) == (profile.name, "CEREG")
        # one at start, one more each time the (stepped) clock passes the 300 s period
        rows = wait_for(
            lambda: influx.query('SELECT * FROM "modem_health"'), what="modem_health points"
        )
        keys = ["profile", "via", "registered", "creg", "cgreg", "cereg", "model"]
        keys += ["rsrp_dbm", "rsrq_db", "rssi_dbm", "roaming", "act"]
        assert {tuple(row.get(k) for k in keys) for row in rows} == {
            (profile.name, "CEREG", True, 0, 0, 1, identity.model, -91, -10, -71, False, None)
        }
        sms = wait_for(
            lambda: len(r := influx.query('SELECT * FROM "sms_sent"')) == 2 and r,
            what="sms_sent in InfluxDB",
        )
        assert sorted(r["kind"] for r in sms) == ["firing", "reply"]
    finally:
        alerts.stop()


@pytest.mark.parametrize(("identity", "profile", "storage"), LTE)
def test_registered_nowhere_the_alert_waits_and_goes_out_once(
    broker: Broker,
    tmp_path: Path,
    make_emulator: MakeEmulator,
    identity: ModemIdentity,
    profile: ModemProfile,
    storage: str,
) -> None:
    emulator = make_emulator(identity, registered=False)  # +CREG 0, +CGREG 0, +CEREG 2
    clock = SteppingClock(T0)
    db = tmp_path / "alerts.sqlite3"
    alerts = start_alerts(
        broker, {FARM: _config()}, db, clock, modem=modem_client(emulator, profile=profile)
    )
    try:
        _fire(broker, clock, db)
        wait_for(lambda: alerts.problems.count("modem_no_network") >= 1, what="send attempt")
        time.sleep(0.3)  # several delivery rounds: none may send
        assert emulator.sent == []
        assert not any(c.startswith("AT+CMGS") for c in emulator.commands)
        store = AlertStore(db, SystemClock())
        try:
            (row,) = store.sms_log()
            assert (row["state"], row["attempts"]) == ("pending", 1)
            assert "+CEREG 2" in str(row["last_error"])
        finally:
            store.close()
        emulator.set_registered(True)
        clock.now += 6_000  # the retry (5 s in these tests) is due
        (alert,) = wait_for(lambda: emulator.sent, what="the alert once registered")
        assert alert.text.startswith("ALERTA 1 Rancho modelo La Mixteca: ")
        clock.now += 20 * MIN  # before escalation (1 h) and reminders (6 h): nothing else due
        time.sleep(0.5)
        assert len(emulator.sent) == 1
        store = AlertStore(db, SystemClock())
        try:
            (row,) = store.sms_log()
            assert (row["state"], row["channel"], row["attempts"]) == ("sent", "modem", 2)
        finally:
            store.close()
    finally:
        alerts.stop()


def test_check_config_shows_and_validates_the_modem_profile(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FARMWATCH_ALERTS_FARM_DIR", str(FARM_FILES))
    monkeypatch.setenv("FARMWATCH_ALERTS_STATE_DB", str(tmp_path / "alerts.sqlite3"))
    monkeypatch.setenv("FARMWATCH_ALERTS_MODEM_PORT", "/dev/ttyUSB2")
    monkeypatch.setenv("FARMWATCH_ALERTS_MODEM_PROFILE", "quectel-lte")
    monkeypatch.setenv("FARMWATCH_ALERTS_API_LISTEN", "")  # the API's own checks: test_alert_api
    assert main(["--check-config"]) == 0
    out = capsys.readouterr().out
    assert (
        "  módem / modem /dev/ttyUSB2: perfil / profile quectel-lte: Quectel LTE: EG25-G/EC25 "
        "(Cat-4), EG91/EG95 (Cat-1), BG95/BG96/BG77 (Cat-M/NB-IoT); registro / registration "
        "+CREG, +CGREG, +CEREG; SMS storage SM"
    ) in out
    monkeypatch.delenv("FARMWATCH_ALERTS_MODEM_PROFILE")
    assert main(["--check-config"]) == 0
    assert "perfil / profile auto (AT+CGMM → classic-2g, simcom-lte" in capsys.readouterr().out
    monkeypatch.setenv("FARMWATCH_ALERTS_MODEM_PROFILE", "sim800")
    assert main(["--check-config"]) == 2
    assert "unknown modem profile 'sim800'" in capsys.readouterr().err
