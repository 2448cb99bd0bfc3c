"""GSM/LTE modem over a serial port: AT commands in PDU mode, sending and receiving SMS.

The modem is (re)initialised lazily: after opening the port, after a timeout, after an
unsolicited reset banner (``RDY``), after an error that can mean the modem lost its settings and
after the network registration it was using went away. What differs between modem families
(registration reports, message storage, boot chatter) comes from a :class:`ModemProfile`
(``modem_profiles.py``), chosen or detected from ``AT+CGMM``. Registration through any of
``+CREG``, ``+CGREG``, ``+CEREG`` counts (an LTE-only network registers only ``+CEREG``).
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
from collector.alerts.modem_profiles import (
    AUTO,
    CLASSIC_2G,
    INFO_URCS,
    ModemProfile,
    ProfileChoice,
    detect_profile,
)
from collector.alerts.modem_status import (
    ModemStatus,
    Registration,
    SignalReport,
    parse_cesq,
    parse_csq,
    parse_registration,
)
from farmwatch_shared.clock import Clock
from farmwatch_shared.serial_port import PortFactory, SerialPort
from farmwatch_shared.sms_pdu import DeliverPdu, PduError, decode_deliver, encode_submit

log = logging.getLogger(__name__)

_FINAL_OK = "OK"
_CMS = re.compile(r"^\+CMS ERROR:\s*(\d+)")
_CME = re.compile(r"^\+CME ERROR:\s*(\S.*)")
_REGISTRATION_URCS = ("+CREG:", "+CGREG:", "+CEREG:")
_REFUSED = ("error", "cme_error")
"""Causes meaning the modem does not know a command (not that it is broken)."""

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


def parse_cmti(line: str) -> tuple[str | None, int] | None:
    """(storage, index) of ``+CMTI: "ME",3`` (storage None if not given), None if malformed."""
    fields = line.partition(":")[2].split(",")
    try:
        index = int(fields[-1])
    except ValueError:
        return None
    storage = fields[0].strip().strip('"') if len(fields) > 1 else ""
    return (storage or None), index


def _model_line(lines: list[str]) -> str:
    """The model in an ``AT+CGMM`` answer (bare or ``+CGMM:``-prefixed); not a ``+CPIN:
    READY`` or other code the modem volunteered meanwhile."""
    for line in lines:
        if line.startswith("+CGMM:") or not line.startswith("+"):
            return line.removeprefix("+CGMM:").strip()
    return ""


def _pdu_after(lines: list[str], header: str) -> str | None:
    """The line after the first one starting with ``header`` (the PDU of ``+CMGR:``)."""
    for first, second in itertools.pairwise(lines):
        if first.startswith(header):
            return second
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
    storage: str | None = None
    """Where it was stored (``"ME"``, ``"SM"``; ``"cmt"``: routed, never stored; None: the
    modem's current storage, not named)."""

    @property
    def location(self) -> str:
        """``me:3``, ``sm:0``, ``cmt:0``, or ``sim:<index>`` when the storage is not named."""
        return f"{(self.storage or 'sim').lower()}:{self.index}"


@dataclass(frozen=True)
class UnreadableSms:
    """A stored or routed message that could not be decoded: kept whole for the record."""

    index: int
    """Position in the modem's storage (0 for a message routed with ``+CMT``: see ``storage``)."""
    pdu: str
    """The PDU line exactly as the modem gave it."""
    reason: str
    storage: str | None = None
    """As :attr:`IncomingSms.storage`."""

    @property
    def location(self) -> str:
        """As :attr:`IncomingSms.location`."""
        return f"{(self.storage or 'sim').lower()}:{self.index}"


class GsmModem:
    """An SMS channel through an AT-command modem. Not thread-safe: one thread owns it (only
    :attr:`status`, an immutable snapshot, may be read from any thread)."""

    name = "modem"

    def __init__(
        self,
        open_port: PortFactory,
        clock: Clock,
        *,
        profile: ProfileChoice,
        command_timeout_s: float = 5.0,
        send_timeout_s: float = 30.0,
        new_message_indication: str | None = None,
    ) -> None:
        self._open_port = open_port
        self._command_timeout_s = command_timeout_s
        self._send_timeout_s = send_timeout_s
        self._choice = profile
        """A fixed profile, or ``"auto"``: detected from ``AT+CGMM`` at each initialisation."""
        self._profile: ModemProfile | None = None if profile == AUTO else profile
        self._cnmi = new_message_indication
        """``AT+CNMI``: ``2,1,…`` stores and announces (``+CMTI``); ``2,2,…`` routes (``+CMT``);
        None: the profile's."""
        self._clock = clock
        self._port: SerialPort | None = None
        self._buffer = b""
        self._ready = False
        self._reference = 0
        self._announced: list[tuple[str | None, int]] = []
        """(storage, index) of messages announced with ``+CMTI``."""
        self._storage: str | None = None
        """The read storage selected with ``AT+CPMS`` (None: the modem's own, not named)."""
        self._cesq = True
        """False once the modem refused ``AT+CESQ`` (until it is initialised again)."""
        self._direct: list[IncomingSms | UnreadableSms] = []
        """Messages routed straight to us (``+CMT``, not stored on the SIM)."""
        self._cmt_pending = False
        self._status = ModemStatus(self._profile.name if self._profile is not None else AUTO)
        self.resets_seen = 0

    @property
    def profile(self) -> ModemProfile | None:
        """The profile in use (None while ``auto`` has not detected one yet)."""
        return self._profile

    @property
    def status(self) -> ModemStatus:
        """The latest registration and signal reports (see :meth:`refresh_status`)."""
        return self._status

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
        profile = self._resolve_profile()
        try:
            self._command("AT+CPIN?", expect="+CPIN:")
        except ChannelError as exc:
            raise ChannelError("no_sim", exc.detail) from None
        self._await_registration(profile)
        self._storage = None
        for command in profile.sms_setup:
            self._setup(command)
        self._command(f"AT+CNMI={self._cnmi or profile.cnmi}")
        self._cesq = profile.cesq
        self._ready = True
        log.info(
            "Módem listo / modem ready: %s (%s)",
            self._status.describe(),
            f"almacén / storage {self._storage}" if self._storage else "almacén del módem",
        )

    def _resolve_profile(self) -> ModemProfile:
        """The fixed profile, or the one ``AT+CGMM`` names (``auto``)."""
        if self._choice != AUTO:
            return self._choice
        try:
            lines = self._command("AT+CGMM")
        except ChannelError as exc:
            if exc.cause not in _REFUSED:
                raise
            lines = []
        model = _model_line(lines)
        profile = detect_profile(model)
        if profile is not self._profile:
            log.info(
                "Módem %r: perfil / profile %s (%s)", model or "?", profile.name, profile.label
            )
        self._profile = profile
        self._status = ModemStatus(profile.name, model or None, self._status.registrations)
        return profile

    def _setup(self, command: str) -> None:
        """One command of the profile's SMS set-up; a refused storage keeps the modem's own."""
        try:
            self._command(command)
        except ChannelError as exc:
            if not command.startswith("AT+CPMS=") or exc.cause == "timeout":
                raise
            log.warning("El módem rechazó / modem refused %s (%s): its own storage", command, exc)
            return
        if command.startswith("AT+CPMS="):
            self._storage = command.partition("=")[2].split(",")[0].strip('"')

    # -- network ----------------------------------------------------------------------------

    def _await_registration(self, profile: ModemProfile) -> None:
        """Ask the profile's registration reports in order until one is registered; raise
        ``no_network`` (naming every answer) when none is."""
        answers = []
        for source in profile.registration:
            reg = self._query_registration(source)
            if reg is None:
                continue
            answers.append(reg.describe())
            if reg.registered:
                return
        raise ChannelError(
            "no_network", "no registrado / not registered: " + ("; ".join(answers) or "?")
        )

    def _query_registration(self, source: str) -> Registration | None:
        """The answer to ``AT+<source>?``, None if the modem does not know it or gave none."""
        try:
            lines = self._command(f"AT+{source}?", expect=f"+{source}:")
        except ChannelError as exc:
            if exc.cause in _REFUSED:
                return None  # e.g. AT+CEREG? on a 2G-only modem
            raise
        for line in lines:
            reg = parse_registration(line)
            if reg is not None and not reg.unsolicited:
                self._note_registration(reg)
                return reg
        return None

    def _note_registration(self, reg: Registration) -> None:
        previous = self._status.via
        self._status = self._status.with_registration(reg)
        now = self._status.via
        if now == previous:
            return
        if now is None:
            self._ready = False  # check again before the next send
            log.warning("Módem sin registro / modem not registered: %s", reg.describe())
        else:
            log.info("Módem registrado vía / modem registered via +%s: %s", now, reg.describe())

    def refresh_status(self) -> ModemStatus:
        """Ask every registration report of the profile and the signal quality (``AT+CSQ``,
        and ``AT+CESQ`` where the modem has it); return the new :attr:`status`. Works while
        the modem is not registered (that is reported, not raised)."""
        try:
            self._ensure_ready()
        except ChannelError as exc:
            if exc.cause != "no_network":
                raise
        else:
            assert self._profile is not None
            for source in self._profile.registration:
                self._query_registration(source)
        signal = self.signal()
        s = self._status
        self._status = ModemStatus(
            s.profile, s.model, s.registrations, signal, self._clock.now_ms()
        )
        return self._status

    def signal(self) -> SignalReport:
        """Signal quality from ``AT+CSQ`` and, where available, ``AT+CESQ`` (RSRP, RSRQ)."""
        if self._port is None:
            self._ensure_ready()
        lines = self._command("AT+CSQ", expect="+CSQ:")
        try:
            report = parse_csq(lines[0]) if lines else SignalReport(None, None)
        except ValueError:
            raise ChannelError("bad_response", lines[0][:80]) from None
        if not self._cesq:
            return report
        try:
            lines = self._command("AT+CESQ", expect="+CESQ:")
        except ChannelError as exc:
            if exc.cause not in _REFUSED:
                raise
            self._cesq = False
            log.info("El módem no tiene AT+CESQ / modem has no AT+CESQ: AT+CSQ only")
            return report
        try:
            return parse_cesq(lines[0], report) if lines else report
        except ValueError:
            raise ChannelError("bad_response", lines[0][:80]) from None

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

    def poll_incoming(
        self,
        sweep: bool = False,
        accept: Callable[[IncomingSms], None] | None = None,
        reject: Callable[[UnreadableSms], None] | None = None,
    ) -> list[IncomingSms]:
        """Messages announced with ``+CMTI`` (or all stored ones when ``sweep``); each is read
        and deleted from the modem's storage (the one the announcement names) after ``accept``
        (which stores it durably) returned. A message that cannot be decoded, whatever the
        reason, goes to ``reject`` (which keeps its PDU) and is deleted too, so it neither
        blocks the messages behind it nor comes back. Call regularly from the owning thread."""
        self._ensure_ready()
        found: list[IncomingSms | UnreadableSms] = []
        if sweep:
            found += self._list_stored()
            self._announced.clear()
        while self._announced:
            storage, index = self._announced.pop(0)
            item = self._read_stored(storage, index)
            if item is not None:
                found.append(item)
        messages: list[IncomingSms] = []
        for item in found:
            if self._hand_over(item, accept, reject):
                assert isinstance(item, IncomingSms)
                messages.append(item)
            self._select_storage(item.storage)
            self._command(f"AT+CMGD={item.index}")
        direct, self._direct = self._direct, []
        for routed in direct:  # nothing to delete: they were never stored
            if self._hand_over(routed, accept, reject):
                assert isinstance(routed, IncomingSms)
                messages.append(routed)
        return messages

    @staticmethod
    def _hand_over(
        item: IncomingSms | UnreadableSms,
        accept: Callable[[IncomingSms], None] | None,
        reject: Callable[[UnreadableSms], None] | None,
    ) -> bool:
        """Give ``item`` to ``accept`` or ``reject``; True if it was a readable message."""
        if isinstance(item, IncomingSms):
            if accept is not None:
                accept(item)
            return True
        log.warning("SMS ilegible en %s / unreadable SMS: %s", item.location, item.reason)
        if reject is not None:
            reject(item)
        return False

    def _list_stored(self) -> list[IncomingSms | UnreadableSms]:
        """Every message in the profile's storage (``AT+CMGL=4``)."""
        storage = self._select_storage(self._profile.storage if self._profile else None)
        found: list[IncomingSms | UnreadableSms] = []
        lines = self._command("AT+CMGL=4", expect="")
        for header, pdu in itertools.pairwise(lines):
            if header.startswith("+CMGL:"):
                index = _index_of(header)
                if index is None:
                    log.warning("+CMGL ilegible / unreadable +CMGL: %r", header[:80])
                    continue
                found.append(self._decoded(index, pdu, storage))
        return found

    def _read_stored(self, storage: str | None, index: int) -> IncomingSms | UnreadableSms | None:
        """The message announced at ``index`` of ``storage`` (``AT+CMGR``), None if the modem
        gave none (the next sweep finds it)."""
        where = self._select_storage(storage)
        pdu = _pdu_after(self._command(f"AT+CMGR={index}", expect=""), "+CMGR:")
        return None if pdu is None else self._decoded(index, pdu, where)

    def _select_storage(self, storage: str | None) -> str | None:
        """Make ``storage`` the read/delete storage (``AT+CPMS``) if the profile names its
        storages and it is not already; return the storage now in use (None: not named)."""
        if storage is None or self._storage is None or storage == self._storage:
            return self._storage
        self._command(f'AT+CPMS="{storage}"')
        self._storage = storage
        return storage

    def _drain(self) -> None:
        """Handle whatever the modem said on its own (reset banners, +CMTI) since last time."""
        self._read_some(timeout_s=0.0)
        for line in self._take_lines():
            self._unsolicited(line)

    @staticmethod
    def _decoded(index: int, pdu: str, storage: str | None) -> IncomingSms | UnreadableSms:
        """The message in ``pdu``, or why not: any failure to decode stays with this one SMS."""
        try:
            decoded: DeliverPdu = decode_deliver(pdu)
        except PduError as exc:
            return UnreadableSms(index, pdu, str(exc), storage)
        except Exception as exc:  # noqa: BLE001 - a decoder bug must not stop the inbox
            return UnreadableSms(index, pdu, f"{type(exc).__name__}: {exc}", storage)
        return IncomingSms(
            index,
            decoded.sender,
            decoded.text,
            decoded.timestamp,
            decoded.numeric_sender,
            storage,
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
        """Handle ``line`` if the modem said it on its own; False if it belongs to an answer."""
        if self._cmt_pending:  # the PDU line after a "+CMT:" header
            self._cmt_pending = False
            self._direct.append(self._decoded(0, line, "cmt"))
            return True
        if line.startswith(_REGISTRATION_URCS):
            reg = parse_registration(line)
            if reg is None or not reg.unsolicited:
                return False  # the answer to AT+CREG? (or garbage): for the command
            self._note_registration(reg)
            return True
        if line.startswith("+CMT:"):
            self._cmt_pending = True
        elif line.startswith("+CMTI:"):
            announced = parse_cmti(line)
            if announced is None:
                log.warning("+CMTI ilegible / unreadable +CMTI: %r", line)
            else:
                self._announced.append(announced)
        elif line.startswith((self._profile or CLASSIC_2G).reset_banners):
            self.resets_seen += 1
            self._ready = False
            log.warning("El módem se reinició / modem reset (%s)", line)
        else:
            return line.startswith(INFO_URCS)
        return True
