"""The modem's AT parser against whatever a modem (or a hostile SMS) produces: any answer ends
in a result or a ``ChannelError``, never another exception; garbage on the SIM is rejected and
the next valid SMS is still handed over. In memory (no pty): a scripted port, and the modem
emulator behind an in-memory link."""

from __future__ import annotations

import threading
import time
from collections import deque

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.alerts.channels import ChannelError
from collector.alerts.modem import GsmModem, IncomingSms, UnreadableSms
from collector.alerts.modem_profiles import AUTO, CLASSIC_2G, PROFILES, ProfileChoice
from farmwatch_emulators.gsm_modem import GsmModemEmulator
from farmwatch_shared.sms_pdu import encode_deliver

PHONE = "+529510000001"
VALID_PDU = encode_deliver(PHONE, "OK 1")


class TickClock:
    """Monotonic time that moves 10 ms per look: timeouts pass without waiting."""

    def __init__(self) -> None:
        self.t = 0.0

    def now_ms(self) -> int:
        return 1_795_000_000_000 + int(self.t * 1000)

    def monotonic(self) -> float:
        self.t += 0.01
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


class ScriptedPort:
    """Answers each command line (and each PDU) with the next scripted chunk."""

    def __init__(self, answers: list[bytes]) -> None:
        self.answers = deque(answers)
        self.buffer = b""

    def write(self, data: bytes, /) -> int:
        if data.endswith((b"\r", b"\x1a", b"\x1b")) and self.answers:
            self.buffer += self.answers.popleft()
        return len(data)

    def read(self, size: int = 1) -> bytes:
        chunk, self.buffer = self.buffer[:size], self.buffer[size:]
        return chunk

    @property
    def in_waiting(self) -> int:
        return len(self.buffer)

    def close(self) -> None:
        pass


LINES = st.one_of(
    st.sampled_from(
        [
            "OK",
            "ERROR",
            "> ",
            "RDY",
            "+CPIN: READY",
            "+CREG: 0,1",
            "+CREG: ",
            "+CEREG: 0,1",
            '+CEREG: 2,1,"1A2B","01A2D001",7',
            "+CEREG: 5",
            '+CGREG: 1,"1A2B"',
            "+CEREG: x,",
            "+CESQ: 99,99,255,255,20,50",
            "+CESQ: 1,2",
            "SIMCOM_SIM7600G-H",
            "EG25",
            "+QIND: SMS DONE",
            "SMS DONE",
            '+CMTI: "ME",0',
            "+CMTI: ,",
            "+CPMS: 0,50,0,50,0,50",
            "+CSQ: ",
            "+CSQ: x,99",
            "+CMGS:",
            "+CMGS: 7",
            "+CMGL:",
            "+CMGL: x,1,,20",
            "+CMGL: 1,1,,20",
            '+CMTI: "SM",',
            '+CMTI: "SM",x',
            "+CMT: ,20",
            "+CMS ERROR: ",
            "+CMS ERROR: 99999999999999999999",
            "+CME ERROR: 10",
            VALID_PDU,
            VALID_PDU[:30],
            "00440D912551513254766800006211291200000003050003",
        ]
    ),
    st.text(alphabet=st.characters(max_codepoint=255), max_size=30),
    st.binary(max_size=20).map(lambda b: b.decode("latin-1")),
)
ANSWERS = st.lists(
    st.lists(LINES, max_size=4).map(lambda ls: ("\r\n".join(ls) + "\r\n").encode("latin-1")),
    max_size=14,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ANSWERS,
    st.sampled_from(["send", "poll", "sweep", "csq", "health"]),
    st.sampled_from([AUTO, *PROFILES.values()]),
)
def test_any_at_answer_gives_a_result_or_a_channel_error(
    answers: list[bytes], call: str, profile: ProfileChoice
) -> None:
    port = ScriptedPort(answers)
    modem = GsmModem(
        lambda: port, TickClock(), profile=profile, command_timeout_s=0.2, send_timeout_s=0.2
    )
    rejected: list[UnreadableSms] = []
    try:
        if call == "send":
            modem.send(PHONE, "hola " * 40)  # two parts
        elif call == "csq":
            modem.signal_quality()
        elif call == "health":
            modem.refresh_status()
        else:
            modem.poll_incoming(
                sweep=call == "sweep", accept=lambda m: None, reject=rejected.append
            )
    except ChannelError:
        pass


class MemoryLink:
    """The emulator's side of an in-memory serial line."""

    path = "memory"

    def __init__(self) -> None:
        self.to_emulator = b""
        self.to_host = b""
        self.lock = threading.Lock()

    def write(self, data: bytes, timeout_s: float = 0.5) -> bool:
        with self.lock:
            self.to_host += data
        return True

    def read(self) -> bytes:
        with self.lock:
            data, self.to_emulator = self.to_emulator, b""
        return data


class HostPort:
    """The host's side of a :class:`MemoryLink`, as pyserial with a short timeout."""

    def __init__(self, link: MemoryLink) -> None:
        self.link = link

    def write(self, data: bytes, /) -> int:
        with self.link.lock:
            self.link.to_emulator += data
        return len(data)

    def read(self, size: int = 1) -> bytes:
        deadline = time.monotonic() + 0.01
        while time.monotonic() < deadline:
            with self.link.lock:
                if self.link.to_host:
                    chunk = self.link.to_host[:size]
                    self.link.to_host = self.link.to_host[size:]
                    return chunk
            time.sleep(0.0005)
        return b""

    @property
    def in_waiting(self) -> int:
        with self.link.lock:
            return len(self.link.to_host)

    def close(self) -> None:
        pass


class RealClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


GARBAGE_PDUS = st.one_of(
    st.binary(max_size=40).map(lambda b: b.hex().upper()),
    st.integers(0, len(VALID_PDU) - 1).map(lambda n: VALID_PDU[:n]),  # a proper prefix
    st.just("00440D912551513254766800006211291200000003050003"),
    st.text(alphabet="0123456789ABCDEFxyz,", max_size=30),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(GARBAGE_PDUS, min_size=1, max_size=3), st.lists(LINES, max_size=3))
def test_garbage_on_the_sim_and_the_line_leaves_the_next_valid_sms_handled(
    pdus: list[str], noise: list[str]
) -> None:
    link = MemoryLink()
    emulator = GsmModemEmulator(link)  # type: ignore[arg-type]
    emulator.start()
    try:
        modem = GsmModem(
            lambda: HostPort(link), RealClock(), profile=CLASSIC_2G, command_timeout_s=0.3
        )
        for pdu in pdus:
            emulator.receive_pdu(pdu)
        emulator.receive_sms(PHONE, "OK 1")
        accepted: list[IncomingSms] = []
        rejected: list[UnreadableSms] = []
        for attempt in range(4):
            if attempt == 0:  # unsolicited noise from the modem before the first poll
                link.write(("\r\n".join(noise) + "\r\n").encode("latin-1"))
            try:
                modem.poll_incoming(sweep=True, accept=accepted.append, reject=rejected.append)
            except ChannelError:
                continue  # noise can fail one poll; the next one works
            if any(m.text == "OK 1" for m in accepted):
                break
        assert [(m.sender, m.text) for m in accepted if m.text == "OK 1"] == [(PHONE, "OK 1")]
        assert emulator.stored == 0
    finally:
        emulator.stop()
