"""GSM modem over a serial port: AT commands in PDU mode, sending and receiving SMS.

The modem is (re)initialised lazily: after opening the port, after a timeout, after an
unsolicited reset banner (``RDY``) and after an error that can mean the modem lost its settings.
Every failure is raised as :class:`ChannelError` with a stable cause key, so the dispatcher can
fail over to the HTTP gateway and retry later.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

import serial

from collector.alerts.channels import ChannelError, PartLedger
from farmwatch_shared.clock import Clock
from farmwatch_shared.serial_port import PortFactory, SerialPort
from farmwatch_shared.sms_pdu import DeliverPdu, PduError, decode_deliver, encode_submit

log = logging.getLogger(__name__)

_FINAL_OK = "OK"
_CMS = re.compile(r"^\+CMS ERROR:\s*(\d+)")
_CME = re.compile(r"^\+CME ERROR:\s*(\S.*)")
_UNSOLICITED = ("+CMTI:", "+CMT:", "RDY", "+CFUN:", "SMS Ready", "Call Ready", "+CPIN: NOT READY")
_RESET_BANNERS = ("RDY", "+CFUN:", "+CPIN: NOT READY")

CMS_CAUSES = {
    38: "network_out_of_order",
    41: "temporary_failure",
    42: "congestion",
    304: "invalid_pdu_mode_parameter",
    310: "sim_not_inserted",
    330: "smsc_unknown",
    331: "no_network",
    332: "network_timeout",
}


def _index_of(header: str) -> int | None:
    """The storage index of a ``+CMGL: <index>,...`` line, None if it has none."""
    try:
        return int(header.split(":", 1)[1].split(",")[0])
    except (IndexError, ValueError):
        return None


@dataclass(frozen=True)
class IncomingSms:
    """A message read from the modem's storage."""

    index: int
    sender: str
    text: str
    timestamp: str
    numeric_sender: bool = True
    """False for an alphanumeric sender ID: such a sender may not command."""


@dataclass(frozen=True)
class UnreadableSms:
    """A stored or routed message that could not be decoded: kept whole for the record."""

    index: int
    """Position in the modem's storage (0: routed with ``+CMT``, never stored)."""
    pdu: str
    """The PDU line exactly as the modem gave it."""
    reason: str


class GsmModem:
    """An SMS channel through an AT-command modem. Not thread-safe: one thread owns it."""

    name = "modem"

    def __init__(
        self,
        open_port: PortFactory,
        clock: Clock,
        *,
        command_timeout_s: float = 5.0,
        send_timeout_s: float = 30.0,
        new_message_indication: str = "2,1,0,0,0",
    ) -> None:
        self._open_port = open_port
        self._command_timeout_s = command_timeout_s
        self._send_timeout_s = send_timeout_s
        self._cnmi = new_message_indication
        """``AT+CNMI``: ``2,1,…`` stores and announces (``+CMTI``); ``2,2,…`` routes (``+CMT``)."""
        self._clock = clock
        self._port: SerialPort | None = None
        self._buffer = b""
        self._ready = False
        self._reference = 0
        self._announced: list[int] = []
        self._direct: list[IncomingSms | UnreadableSms] = []
        """Messages routed straight to us (``+CMT``, not stored on the SIM)."""
        self._cmt_pending = False
        self.resets_seen = 0

    # -- connection -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the port."""
        if self._port is not None:
            try:
                self._port.close()
            except (OSError, serial.SerialException):
                log.debug("closing the modem port failed", exc_info=True)
        self._port = None
        self._ready = False

    def _ensure_ready(self) -> None:
        if self._port is None:
            try:
                self._port = self._open_port()
            except (OSError, serial.SerialException) as exc:
                raise ChannelError("port_unavailable", str(exc)) from None
            self._buffer = b""
            self._ready = False
        self._drain()
        if self._ready:
            return
        # A modem that just powered up may need a moment: a few plain ATs until it answers.
        for attempt in range(3):
            try:
                self._command("AT", timeout_s=min(self._command_timeout_s, 2.0))
                break
            except ChannelError as exc:
                if exc.cause != "timeout" or attempt == 2:
                    raise
        self._command("ATE0")
        self._command("AT+CMEE=1")
        try:
            self._command("AT+CPIN?", expect="+CPIN:")
        except ChannelError as exc:
            raise ChannelError("no_sim", exc.detail) from None
        lines = self._command("AT+CREG?", expect="+CREG:")
        stat = lines[0].split(",")[-1].strip() if lines else ""
        if stat not in ("1", "5"):  # registered, home or roaming
            raise ChannelError("no_network", f"+CREG stat {stat or '?'}")
        self._command("AT+CMGF=0")
        self._command(f"AT+CNMI={self._cnmi}")
        self._ready = True
        log.info("Módem GSM listo / GSM modem ready")

    def signal_quality(self) -> int | None:
        """RSSI from ``AT+CSQ`` (0–31), None when unknown."""
        self._ensure_ready()
        lines = self._command("AT+CSQ", expect="+CSQ:")
        try:
            rssi = int(lines[0].split(":")[1].split(",")[0]) if lines else 99
        except ValueError:
            raise ChannelError("bad_response", lines[0][:80]) from None
        return None if rssi == 99 else rssi

    # -- sending ----------------------------------------------------------------------------

    def send(self, phone: str, text: str, ledger: PartLedger | None = None) -> str:
        """Send the parts of ``text`` not yet in ``ledger`` (all of them, under a fresh
        concatenation reference, without one); return the message references of the parts
        sent now. Each part is recorded in the ledger as the modem confirms it (``+CMGS``).

        A modem that lost its settings unnoticed (PDU mode refused) is initialised again and the
        message retried once, from the first part not confirmed. No ``+CMGS`` after the PDU
        went out (timeout, the port gone) raises an ``uncertain`` ChannelError naming the part:
        the modem may have sent it."""
        if ledger is None:
            self._reference = (self._reference + 1) % 256
            ledger = PartLedger(self._reference)
        try:
            return self._send_once(phone, text, ledger)
        except ChannelError as exc:
            if exc.cause != "invalid_pdu_mode_parameter":
                raise
            log.warning("El módem perdió su configuración / modem lost its settings: again")
            return self._send_once(phone, text, ledger)

    def _send_once(self, phone: str, text: str, ledger: PartLedger) -> str:
        try:
            self._ensure_ready()
            pdus = encode_submit(phone, text, reference=ledger.reference)
            refs = []
            for index, pdu in enumerate(pdus, start=1):
                if index in ledger.sent:
                    continue
                self._write(f"AT+CMGS={pdu.tpdu_length}\r".encode())
                self._wait_prompt()
                self._write(pdu.hex.encode("ascii") + b"\x1a")
                try:
                    lines = self._collect(self._send_timeout_s, expect="+CMGS:")
                except ChannelError as exc:
                    if exc.cause not in ("timeout", "port_unavailable"):
                        raise  # a final result code: the modem did not send this part
                    raise ChannelError(
                        exc.cause,
                        f"part {index}/{len(pdus)}: no +CMGS after the PDU ({exc.detail})",
                        uncertain=True,
                        part=index,
                    ) from None
                ref = lines[0].split(":", 1)[1].strip() if lines else "?"
                refs.append(ref)
                ledger.record(index, len(pdus), ref)
            return ",".join(refs)
        except ChannelError as exc:
            if exc.cause in ("timeout", "modem_reset", "invalid_pdu_mode_parameter", "error"):
                self._ready = False  # settings may be lost: initialise again next time
            if exc.cause == "port_unavailable":
                self.close()
            raise

    def _wait_prompt(self) -> None:
        deadline = self._clock.monotonic() + self._command_timeout_s
        while True:
            if b">" in self._buffer:
                self._buffer = self._buffer[self._buffer.index(b">") + 1 :]
                return
            for line in self._take_lines():
                if not self._unsolicited(line):
                    self._check_final(line, [])
            if self._clock.monotonic() >= deadline:
                self._write(b"\x1b")  # cancel the half-started submission
                raise ChannelError("timeout", "no '>' prompt")
            self._read_some()

    # -- receiving --------------------------------------------------------------------------

    def poll_incoming(  # noqa: C901 - one pass over +CMGL: read, hand over or reject, delete; split next
        self,
        sweep: bool = False,
        accept: Callable[[IncomingSms], None] | None = None,
        reject: Callable[[UnreadableSms], None] | None = None,
    ) -> list[IncomingSms]:
        """Messages announced with ``+CMTI`` (or all stored ones when ``sweep``); each is read
        and deleted from the modem's storage after ``accept`` (which stores it durably)
        returned. A message that cannot be decoded, whatever the reason, goes to ``reject``
        (which keeps its PDU) and is deleted too, so it neither blocks the messages behind it
        nor comes back. Call regularly from the owning thread."""
        self._ensure_ready()
        found: list[IncomingSms | UnreadableSms] = []
        if sweep:
            lines = self._command("AT+CMGL=4", expect="")
            for header, pdu in itertools.pairwise(lines):
                if header.startswith("+CMGL:"):
                    index = _index_of(header)
                    if index is None:
                        log.warning("+CMGL ilegible / unreadable +CMGL: %r", header[:80])
                        continue
                    found.append(self._decoded(index, pdu))
            self._announced.clear()
        while self._announced:
            index = self._announced.pop(0)
            lines = self._command(f"AT+CMGR={index}", expect="")
            if len(lines) >= 2:
                found.append(self._decoded(index, lines[1]))
        messages: list[IncomingSms] = []
        for item in found:
            if isinstance(item, IncomingSms):
                if accept is not None:
                    accept(item)
                messages.append(item)
            else:
                log.warning(
                    "SMS ilegible en posición %d / unreadable SMS: %s", item.index, item.reason
                )
                if reject is not None:
                    reject(item)
            self._command(f"AT+CMGD={item.index}")
        direct, self._direct = self._direct, []
        for routed in direct:  # nothing to delete: they were never stored
            if isinstance(routed, IncomingSms):
                if accept is not None:
                    accept(routed)
                messages.append(routed)
            elif reject is not None:
                reject(routed)
        return messages

    def _drain(self) -> None:
        """Handle whatever the modem said on its own (reset banners, +CMTI) since last time."""
        self._read_some(timeout_s=0.0)
        for line in self._take_lines():
            self._unsolicited(line)

    @staticmethod
    def _decoded(index: int, pdu: str) -> IncomingSms | UnreadableSms:
        """The message in ``pdu``, or why not: any failure to decode stays with this one SMS."""
        try:
            decoded: DeliverPdu = decode_deliver(pdu)
        except PduError as exc:
            return UnreadableSms(index, pdu, str(exc))
        except Exception as exc:  # noqa: BLE001 - a decoder bug must not stop the inbox
            return UnreadableSms(index, pdu, f"{type(exc).__name__}: {exc}")
        return IncomingSms(
            index, decoded.sender, decoded.text, decoded.timestamp, decoded.numeric_sender
        )

    # -- AT plumbing ------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        assert self._port is not None
        try:
            self._port.write(data)
        except (OSError, serial.SerialException) as exc:
            self.close()
            raise ChannelError("port_unavailable", str(exc)) from None

    def _read_some(self, timeout_s: float | None = None) -> None:
        assert self._port is not None
        try:
            waiting = self._port.in_waiting
            if timeout_s == 0.0 and not waiting:
                return
            chunk = self._port.read(max(waiting, 1))
        except (OSError, serial.SerialException) as exc:
            self.close()
            raise ChannelError("port_unavailable", str(exc)) from None
        self._buffer += chunk

    def _take_lines(self) -> list[str]:
        lines = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                break
            raw, self._buffer = self._buffer[:end], self._buffer[end + 1 :]
            line = raw.decode("latin-1").strip()
            if line:
                lines.append(line)
        return lines

    def _command(self, command: str, expect: str = "", timeout_s: float | None = None) -> list[str]:
        """Send one command line; return the information lines (``expect`` prefix, or all)."""
        if self._port is None:
            raise ChannelError("port_unavailable", "not open")
        self._write(command.encode("ascii") + b"\r")
        try:
            return self._collect(
                self._command_timeout_s if timeout_s is None else timeout_s,
                expect=expect,
                echo=command,
            )
        except ChannelError as exc:
            if exc.cause == "timeout":
                self._ready = False
            raise

    def _collect(self, timeout_s: float, expect: str, echo: str = "") -> list[str]:
        deadline = self._clock.monotonic() + timeout_s
        info: list[str] = []
        while True:
            for line in self._take_lines():
                if echo and line == echo:
                    continue
                if self._unsolicited(line):
                    continue
                if self._check_final(line, info):
                    return [x for x in info if not expect or x.startswith(expect)]
                info.append(line)
            if self._clock.monotonic() >= deadline:
                raise ChannelError("timeout", f"no answer within {timeout_s:.1f}s")
            self._read_some()

    def _check_final(self, line: str, info: list[str]) -> bool:
        """True on OK; raise on error results."""
        if line == _FINAL_OK:
            return True
        if line in ("ERROR", "NO CARRIER"):
            raise ChannelError("error", line)
        if (m := _CMS.match(line)) is not None:
            code = int(m.group(1))
            raise ChannelError(CMS_CAUSES.get(code, f"cms_{code}"), line)
        if (m := _CME.match(line)) is not None:
            detail = m.group(1)
            cause = "no_sim" if detail.strip() in ("10", "SIM not inserted") else "cme_error"
            raise ChannelError(cause, line)
        return False

    def _unsolicited(self, line: str) -> bool:
        if self._cmt_pending:  # the PDU line after a "+CMT:" header
            self._cmt_pending = False
            self._direct.append(self._decoded(0, line))
            return True
        if not line.startswith(_UNSOLICITED):
            return False
        if line.startswith("+CMT:"):
            self._cmt_pending = True
        elif line.startswith("+CMTI:"):
            try:
                self._announced.append(int(line.rsplit(",", 1)[1]))
            except (IndexError, ValueError):
                log.warning("+CMTI ilegible / unreadable +CMTI: %r", line)
        elif line.startswith(_RESET_BANNERS):
            self.resets_seen += 1
            self._ready = False
            log.warning("El módem se reinició / modem reset (%s)", line)
        return True
