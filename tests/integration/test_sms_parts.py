"""Each SMS is sent once, not once per channel (finding 15): a multi-part message that fails
part-way goes on from the first unsent part on the modem (never whole through the gateway),
and a send whose outcome is unknown (no +CMGS after the PDU, no HTTP answer) is not failed
over. Real modem emulator on a pty, real HTTP server."""

from __future__ import annotations

import logging
from pathlib import Path

from support.alerts import FakeGateway, modem_client
from support.clocks import SteppingClock

from collector.alerts.channels import SmsChannel
from collector.alerts.dispatch import Dispatcher
from collector.alerts.store import AlertStore
from farmwatch_emulators.gsm_modem import GsmModemEmulator
from farmwatch_shared.problems import ProblemLog

T0 = 1_795_000_000_000
PHONE = "+529510000001"
LONG = "Tanque de captación vacío, revisar la bomba y el flotador. " * 3  # UCS-2: 3 parts


def _setup(
    tmp_path: Path, emulator: GsmModemEmulator, gateway: FakeGateway
) -> tuple[AlertStore, Dispatcher, SteppingClock]:
    clock = SteppingClock(T0)
    store = AlertStore(tmp_path / "alerts.sqlite3", clock)
    problems = ProblemLog(logging.getLogger("test.sms.parts"))
    channels: list[SmsChannel] = [modem_client(emulator, timeout_s=0.3), gateway.channel()]
    return store, Dispatcher(store, channels, clock, problems, retry_initial_s=30), clock


def test_a_message_failing_part_way_goes_on_from_the_next_part_on_the_modem(
    tmp_path: Path, modem_emulator: GsmModemEmulator, gateway: FakeGateway
) -> None:
    store, dispatcher, clock = _setup(tmp_path, modem_emulator, gateway)
    modem_emulator.fail_sends.extend(["OK", "+CMS ERROR: 38"])  # part 1 goes, part 2 refused
    store.enqueue_sms("k", "oax-mixteca", PHONE, LONG, "firing", 1, T0)
    assert dispatcher.send_due() == 0
    assert gateway.requests == []  # the whole text again would follow the orphan part
    assert [p.concat for p in modem_emulator.parts] == [(1, 3, 1)]
    (row,) = store.sms_log()
    assert store.sms_parts(row["id"]) == [(1, "modem", "sent")]
    clock.now += 30_000
    assert dispatcher.send_due() == 1
    (message,) = modem_emulator.sent
    assert message.text == LONG
    assert [p.concat for p in modem_emulator.parts] == [(1, 3, 1), (1, 3, 2), (1, 3, 3)]
    assert gateway.requests == []
    assert store.sms_log()[0]["state"] == "sent"


def test_no_cmgs_after_the_pdu_is_not_failed_over(
    tmp_path: Path, modem_emulator: GsmModemEmulator, gateway: FakeGateway
) -> None:
    store, dispatcher, clock = _setup(tmp_path, modem_emulator, gateway)
    modem_emulator.fail_sends.append("")  # the modem sends it, the answer is lost
    store.enqueue_sms("k", "oax-mixteca", PHONE, "ALERTA 1 ...", "firing", 1, T0)
    assert dispatcher.send_due() == 0
    assert len(modem_emulator.sent) == 1
    assert gateway.requests == []  # the gateway would duplicate it
    (row,) = store.sms_log()
    assert row["state"] == "pending"
    assert store.sms_parts(row["id"]) == [(1, "modem", "uncertain")]
    # the retry stays on the modem (documented: the recipient may see that part twice)
    clock.now += 30_000
    assert dispatcher.send_due() == 1
    assert gateway.requests == []
    assert store.sms_log()[0]["channel"] == "modem"


def test_no_http_answer_is_not_failed_over_to_the_modem(
    tmp_path: Path, modem_emulator: GsmModemEmulator, gateway: FakeGateway
) -> None:
    store, dispatcher, clock = _setup(tmp_path, modem_emulator, gateway)
    modem_emulator.registered = False
    gateway.delay_s = 2.5  # past the channel's 2 s read timeout; it records the message
    store.enqueue_sms("k", "oax-mixteca", PHONE, "ALERTA 1 ...", "firing", 1, T0)
    assert dispatcher.send_due() == 0
    modem_emulator.registered = True
    gateway.delay_s = 0.0
    clock.now += 30_000
    assert dispatcher.send_due() == 1
    assert modem_emulator.sent == []  # bound to the gateway, which may have sent it
    assert store.sms_log()[0]["channel"] == "http"
