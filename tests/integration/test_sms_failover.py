"""SMS outbox with two channels: the GSM modem first, the Twilio-shaped HTTP gateway when the
modem fails, and nothing lost when both are down."""

from __future__ import annotations

import logging
from pathlib import Path

from support.alerts import ACCOUNT_SID, AUTH_TOKEN, FakeGateway, modem_client
from support.clocks import FrozenClock

from collector.alerts.channels import SmsChannel
from collector.alerts.dispatch import Dispatcher
from collector.alerts.store import AlertStore
from farmwatch_emulators.gsm_modem import GsmModemEmulator
from farmwatch_shared.problems import ProblemLog

T0 = 1_795_000_000_000
PHONE = "+529510000001"
TEXT = "ALERTA 3 Rancho modelo La Mixteca: Bebedero potrero norte 18% (umbral 25%). Responda OK 3"


def _setup(
    tmp_path: Path, emulator: GsmModemEmulator, fake: FakeGateway
) -> tuple[AlertStore, Dispatcher, FrozenClock, ProblemLog]:
    clock = FrozenClock(T0)
    store = AlertStore(tmp_path / "alerts.sqlite3", clock)
    problems = ProblemLog(logging.getLogger("test.sms"))
    channels: list[SmsChannel] = [modem_client(emulator, timeout_s=0.3), fake.channel()]
    dispatcher = Dispatcher(store, channels, clock, problems, retry_initial_s=30, retry_max_s=600)
    return store, dispatcher, clock, problems


def test_modem_first(
    tmp_path: Path, modem_emulator: GsmModemEmulator, gateway: FakeGateway
) -> None:
    store, dispatcher, _, _ = _setup(tmp_path, modem_emulator, gateway)
    store.enqueue_sms("k1", "oax-mixteca", PHONE, TEXT, "firing", 3, T0)
    assert dispatcher.send_due() == 1
    assert [m.text for m in modem_emulator.sent] == [TEXT]
    assert gateway.requests == []
    (row,) = store.sms_log()
    assert (row["state"], row["channel"], row["reference"]) == ("sent", "modem", "0")


def test_modem_failing_goes_to_the_http_gateway(
    tmp_path: Path, modem_emulator: GsmModemEmulator, gateway: FakeGateway
) -> None:
    store, dispatcher, _, problems = _setup(tmp_path, modem_emulator, gateway)
    modem_emulator.fail_sends.append("+CMS ERROR: 38")
    store.enqueue_sms("k1", "oax-mixteca", PHONE, TEXT, "firing", 3, T0)
    assert dispatcher.send_due() == 1
    (request,) = gateway.requests
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert request.form == {"To": PHONE, "From": "+15005550006", "Body": TEXT}
    assert request.auth == f"{ACCOUNT_SID}:{AUTH_TOKEN}"
    (row,) = store.sms_log()
    assert (row["state"], row["channel"]) == ("sent", "http")
    assert str(row["reference"]).startswith("SM")
    assert modem_emulator.sent == []
    assert problems.count("modem_network_out_of_order") == 1


def test_both_failing_keeps_the_message_until_a_channel_returns(
    tmp_path: Path, modem_emulator: GsmModemEmulator, gateway: FakeGateway
) -> None:
    store, dispatcher, clock, _ = _setup(tmp_path, modem_emulator, gateway)
    modem_emulator.registered = False
    gateway.status = 503
    store.enqueue_sms("k1", "oax-mixteca", PHONE, TEXT, "firing", 3, T0)
    store.enqueue_sms("k1", "oax-mixteca", PHONE, TEXT, "firing", 3, T0)  # same key: once
    assert dispatcher.send_due() == 0
    (row,) = store.sms_log()
    assert (row["state"], row["attempts"]) == ("pending", 1)
    assert "no_network" in str(row["last_error"])
    assert "gateway_http_503" in str(row["last_error"])
    clock.now += 29_000
    assert dispatcher.send_due() == 0  # not due before the backoff delay
    assert store.sms_log()[0]["attempts"] == 1
    clock.now += 1_000
    assert dispatcher.send_due() == 0  # due, still down: next delay doubles
    assert store.sms_log()[0]["attempts"] == 2
    clock.now += 60_000
    modem_emulator.registered = True  # the modem finds the network again
    assert dispatcher.send_due() == 1
    assert [m.text for m in modem_emulator.sent] == [TEXT]
    assert gateway.requests == []
    clock.now += 3_600_000
    assert dispatcher.send_due() == 0  # sent exactly once
    (row,) = store.sms_log()
    assert (row["state"], row["channel"], row["attempts"]) == ("sent", "modem", 3)


def test_gateway_back_first(
    tmp_path: Path, modem_emulator: GsmModemEmulator, gateway: FakeGateway
) -> None:
    store, dispatcher, clock, _ = _setup(tmp_path, modem_emulator, gateway)
    modem_emulator.sim_present = False
    gateway.status = 500
    store.enqueue_sms("k1", "oax-mixteca", PHONE, TEXT, "firing", 3, T0)
    assert dispatcher.send_due() == 0
    gateway.status = 201
    clock.now += 30_000
    assert dispatcher.send_due() == 1
    assert [r.form["Body"] for r in gateway.requests] == [TEXT]
