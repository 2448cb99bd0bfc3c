"""The GSM modem channel (pyserial, AT commands, PDU mode) against the modem emulator on a pty:
sending, encodings, concatenation, every failure mode, and receiving."""

from __future__ import annotations

import pytest
from support.alerts import modem_client
from support.waiting import wait_for

from collector.alerts.channels import ChannelError
from collector.alerts.modem import GsmModem, IncomingSms
from collector.alerts.modem_profiles import CLASSIC_2G
from farmwatch_emulators.gsm_modem import GsmModemEmulator
from farmwatch_shared.clock import SystemClock
from farmwatch_shared.serial_port import pyserial_factory

PHONE = "+529510000001"


def test_initialises_and_sends_gsm7_ucs2_and_concatenated(modem_emulator: GsmModemEmulator) -> None:
    modem = modem_client(modem_emulator)
    modem.send(PHONE, "Nivel bajo en el bebedero: 18% ¿revisar?")
    modem.send(PHONE, "Quedan 2 días de agua")
    long_text = "Tanque de captación vacío. " * 8
    modem.send(PHONE, long_text)
    init = modem_emulator.commands[:7]
    assert init == [
        "AT",
        "ATE0",
        "AT+CMEE=1",
        "AT+CPIN?",
        "AT+CREG?",
        "AT+CMGF=0",
        "AT+CNMI=2,1,0,0,0",
    ]
    first, second, third = modem_emulator.sent
    assert (first.to, first.text, first.encoding) == (
        PHONE,
        "Nivel bajo en el bebedero: 18% ¿revisar?",
        "gsm7",
    )
    assert (second.text, second.encoding) == ("Quedan 2 días de agua", "ucs2")
    assert third.text == long_text
    assert third.encoding == "ucs2"
    assert len(third.parts) == 4
    assert {p.concat[0] for p in third.parts if p.concat} == {3}  # one reference for all parts
    assert modem.signal_quality() == 21


@pytest.mark.parametrize(
    ("result", "cause"),
    [
        ("ERROR", "error"),
        ("+CMS ERROR: 38", "network_out_of_order"),
        ("+CMS ERROR: 500", "cms_500"),
    ],
)
def test_error_results_raise_and_the_next_send_works(
    modem_emulator: GsmModemEmulator, result: str, cause: str
) -> None:
    modem = modem_client(modem_emulator)
    modem_emulator.fail_sends.append(result)
    with pytest.raises(ChannelError) as failure:
        modem.send(PHONE, "uno")
    assert failure.value.cause == cause
    modem.send(PHONE, "dos")
    assert [m.text for m in modem_emulator.sent] == ["dos"]


def test_no_sim_and_no_network(modem_emulator: GsmModemEmulator) -> None:
    modem = modem_client(modem_emulator)
    modem_emulator.sim_present = False
    with pytest.raises(ChannelError) as failure:
        modem.send(PHONE, "uno")
    assert failure.value.cause == "no_sim"
    modem_emulator.sim_present = True
    modem_emulator.registered = False
    with pytest.raises(ChannelError) as failure:
        modem.send(PHONE, "uno")
    assert failure.value.cause == "no_network"
    modem_emulator.registered = True
    modem.send(PHONE, "tres")
    assert [m.text for m in modem_emulator.sent] == ["tres"]


def test_silence_times_out_and_the_modem_is_reinitialised(modem_emulator: GsmModemEmulator) -> None:
    modem = modem_client(modem_emulator, timeout_s=0.3)
    modem.send(PHONE, "uno")
    modem_emulator.silent = True
    with pytest.raises(ChannelError) as failure:
        modem.send(PHONE, "dos")
    assert failure.value.cause == "timeout"
    modem_emulator.silent = False
    before = len(modem_emulator.commands)
    modem.send(PHONE, "tres")
    assert modem_emulator.commands[before] == "AT"  # initialised again before sending
    assert [m.text for m in modem_emulator.sent] == ["uno", "tres"]


def test_modem_reset_is_noticed_and_settings_restored(modem_emulator: GsmModemEmulator) -> None:
    modem = modem_client(modem_emulator)
    modem.send(PHONE, "uno")
    modem_emulator.reset()  # back to echo on, text mode: a PDU send would fail
    wait_for(lambda: modem_emulator.resets == 1)
    modem.send(PHONE, "dos")
    assert modem.resets_seen == 1
    assert modem_emulator.commands.count("AT+CMGF=0") == 2
    assert [m.text for m in modem_emulator.sent] == ["uno", "dos"]


def test_unannounced_reset_is_detected_by_the_refused_pdu_and_the_send_retried(
    modem_emulator: GsmModemEmulator,
) -> None:
    modem = modem_client(modem_emulator)
    modem.send(PHONE, "uno")
    modem_emulator.reset(announce=False)
    modem.send(PHONE, "dos")  # text mode answers +CMS ERROR: 304; initialise and retry once
    assert modem_emulator.commands.count("AT+CMGF=0") == 2
    assert [m.text for m in modem_emulator.sent] == ["uno", "dos"]


def test_incoming_messages_are_read_handed_over_and_deleted(
    modem_emulator: GsmModemEmulator,
) -> None:
    modem = modem_client(modem_emulator)
    modem.send(PHONE, "hola")  # initialises (+CNMI) so arrivals are announced
    modem_emulator.receive_sms(PHONE, "OK 17")
    accepted: list[IncomingSms] = []
    got = wait_for(lambda: modem.poll_incoming(accept=accepted.append), what="+CMTI")
    assert [(m.sender, m.text) for m in got] == [(PHONE, "OK 17")]
    assert accepted == got
    assert modem_emulator.stored == 0
    assert "AT+CMGR=1" in modem_emulator.commands
    assert "AT+CMGD=1" in modem_emulator.commands
    # stored while nobody listened: found by the sweep (AT+CMGL=4)
    modem_emulator.receive_sms("+529510000002", "Nivel")
    modem_emulator.receive_sms("+529510000003", "¿qué pasó?")
    swept = modem.poll_incoming(sweep=True)
    assert sorted(m.text for m in swept) == ["Nivel", "¿qué pasó?"]
    assert modem_emulator.stored == 0


def test_messages_routed_directly_with_cmt(modem_emulator: GsmModemEmulator) -> None:
    modem = GsmModem(
        pyserial_factory(modem_emulator.link.path, 115200, 0.02),
        SystemClock(),
        profile=CLASSIC_2G,
        command_timeout_s=1.0,
        new_message_indication="2,2,0,0,0",
    )
    modem.send(PHONE, "hola")
    assert "AT+CNMI=2,2,0,0,0" in modem_emulator.commands
    modem_emulator.receive_sms(PHONE, "NIVEL")
    accepted: list[IncomingSms] = []
    got = wait_for(lambda: modem.poll_incoming(accept=accepted.append), what="+CMT")
    assert [(m.sender, m.text) for m in got] == [(PHONE, "NIVEL")]
    assert accepted == got
    assert modem_emulator.stored == 0
    assert not any(c.startswith("AT+CMGD") for c in modem_emulator.commands)
