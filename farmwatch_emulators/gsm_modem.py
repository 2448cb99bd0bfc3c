"""Emulated GSM modem on a pty: the AT command subset farmwatch uses, in PDU mode.

It decodes every SMS-SUBMIT it receives with its own decoder (independent of the encoder under
test), reassembles concatenated messages, and records what a phone would display, so tests can
assert the exact text. Faults are injected by setting attributes: ``sim_present``,
``registered``, ``fail_sends`` (queued final result codes such as ``"ERROR"`` or
``"+CMS ERROR: 38"``), ``silent`` (answers nothing) and :meth:`reset` (power cycle).
Incoming messages (:meth:`receive_sms`) are stored and announced with ``+CMTI``, or routed
straight to the host with ``+CMT`` after ``AT+CNMI=2,2``.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from farmwatch_emulators.pty_link import PtyLink
from farmwatch_shared.sms_pdu import encode_deliver

# Independent table for decoding (septet value → character); 0x1B is the escape.
_ALPHABET = [
    *"@£$¥èéùìòÇ",
    "\n",
    *"Øø",
    "\r",
    *"ÅåΔ_ΦΓΛΩΠΨΣΘΞ",
    "",
    *"ÆæßÉ",
    *" !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§",
    *"¿abcdefghijklmnopqrstuvwxyzäöñüà",
]
_EXTENDED = {10: "\f", 20: "^", 40: "{", 41: "}", 47: "\\", 60: "[", 61: "~", 62: "]", 64: "|"}
_EXTENDED[101] = "€"


@dataclass(frozen=True)
class ReceivedPart:
    """One SMS-SUBMIT the modem was asked to send, decoded."""

    to: str
    text: str
    dcs: int
    pdu: str
    concat: tuple[int, int, int] | None
    at_cmgs_monotonic: float
    """When the ``AT+CMGS`` command line arrived (for latency measurements)."""


@dataclass(frozen=True)
class SentSms:
    """A complete message as the recipient's phone shows it (parts joined)."""

    to: str
    text: str
    parts: tuple[ReceivedPart, ...]

    @property
    def encoding(self) -> str:
        """``gsm7`` or ``ucs2``."""
        return "ucs2" if self.parts[0].dcs & 0x0C == 0x08 else "gsm7"


def decode_submit(pdu_hex: str) -> tuple[str, str, int, tuple[int, int, int] | None]:
    """(destination, text, DCS, concatenation info) of an SMS-SUBMIT PDU with its SMSC part."""
    octets = list(bytes.fromhex(pdu_hex))
    i = octets[0] + 1
    first = octets[i]
    if first & 0x03 != 0x01:
        raise ValueError("not an SMS-SUBMIT")
    ndigits, toa = octets[i + 2], octets[i + 3]
    addr = octets[i + 4 : i + 4 + (ndigits + 1) // 2]
    nibbles = "".join(f"{o & 15:x}{o >> 4:x}" for o in addr)[:ndigits]
    to = ("+" if toa == 0x91 else "") + nibbles
    i += 4 + (ndigits + 1) // 2
    dcs = octets[i + 1]
    vpf = (first >> 3) & 0x03
    i += 2 + {0: 0, 2: 1}.get(vpf, 7)
    udl = octets[i]
    ud = octets[i + 1 :]
    header = ud[: ud[0] + 1] if first & 0x40 else []
    concat = None
    if len(header) >= 6 and header[1] == 0 and header[2] == 3:
        concat = (header[3], header[4], header[5])
    if dcs & 0x0C == 0x08:
        text = bytes(ud[len(header) : udl]).decode("utf-16-be")
        return to, text, dcs, concat
    bits = "".join(f"{o:08b}"[::-1] for o in ud)  # LSB-first bit stream
    skip = -(-len(header) * 8 // 7) * 7
    chars: list[str] = []
    escape = False
    for n in range(skip // 7, udl):
        septet = int(bits[n * 7 : n * 7 + 7][::-1], 2)
        if escape:
            chars.append(_EXTENDED.get(septet, "?"))
            escape = False
        elif septet == 27:
            escape = True
        else:
            chars.append(_ALPHABET[septet])
    return to, "".join(chars), dcs, concat


def _submitted(pdu: str, length: int) -> tuple[str, str, int, tuple[int, int, int] | None] | None:
    """``decode_submit(pdu)``, or None if ``pdu`` is not an SMS-SUBMIT of ``length`` octets
    (without its SMSC part, as AT+CMGS announces it)."""
    try:
        smsc_len = int(pdu[:2], 16)
        decoded = decode_submit(pdu)
    except (ValueError, IndexError):
        return None
    return decoded if len(pdu) // 2 - 1 - smsc_len == length else None


def _tpdu_length(pdu: str) -> int:
    """Octets after the SMSC part (as ``+CMGR``/``+CMGL`` report), for any stored PDU."""
    try:
        return len(pdu) // 2 - 1 - int(pdu[:2], 16)
    except ValueError:
        return len(pdu) // 2


@dataclass
class _Stored:
    pdu: str
    read: bool = False


@dataclass
class GsmModemEmulator:
    """One modem on one pty. ``start`` runs its service thread."""

    link: PtyLink
    monotonic: Callable[[], float] = time.monotonic
    sim_present: bool = True
    registered: bool = True
    signal: int = 21
    silent: bool = False
    fail_sends: deque[str] = field(default_factory=deque)
    """Final result codes to answer the next ``AT+CMGS`` submissions (one per part) with:
    ``"OK"`` sends normally, ``""`` sends but loses the answer (no ``+CMGS``), anything else
    (``"ERROR"``, ``"+CMS ERROR: 38"``) refuses the part."""
    sent: list[SentSms] = field(default_factory=list)
    parts: list[ReceivedPart] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    """Every command line received (for assertions on what the client did)."""

    def __post_init__(self) -> None:
        """Power-on state: echo on, text mode, no notifications, empty SIM storage."""
        self._lock = threading.RLock()
        self._buffer = b""
        self._echo = True
        self._pdu_mode = False
        self._notify = False
        self._route = False
        self._pending_submit: tuple[int, float] | None = None
        self._storage: dict[int, _Stored] = {}
        self._next_mr = 0
        self._concat: dict[tuple[str, int], list[ReceivedPart]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.resets = 0

    def start(self) -> None:
        """Serve the link in a background thread."""
        self._thread = threading.Thread(target=self._serve, name="gsm-modem", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)

    def reset(self, announce: bool = True) -> None:
        """Power cycle: settings back to defaults (echo on, text mode, no notifications);
        ``announce=False`` loses the ``RDY`` banner, as when it came while nobody listened."""
        with self._lock:
            self._echo, self._pdu_mode, self._notify = True, False, False
            self._route = False
            self._pending_submit = None
            self._buffer = b""
            self.resets += 1
            if announce:
                self.link.write(b"\r\nRDY\r\n")

    def receive_sms(self, sender: str, text: str, *, sender_id: bool = False) -> int:
        """An SMS arrives from ``sender`` (``sender_id``: an alphanumeric sender ID, which
        anybody can set to any text): store it (SIM storage) and announce it with ``+CMTI``,
        or, after ``AT+CNMI=2,2``, route it straight to the host with ``+CMT`` (not stored;
        returns 0)."""
        return self.receive_pdu(encode_deliver(sender, text, alphanumeric=sender_id))

    def receive_pdu(self, pdu: str) -> int:
        """An SMS-DELIVER arrives as the PDU ``pdu`` (hex, with its SMSC part), well formed or
        not: stored and announced as :meth:`receive_sms` does."""
        with self._lock:
            tpdu_len = _tpdu_length(pdu)
            if self._route:
                self.link.write(f"\r\n+CMT: ,{tpdu_len}\r\n{pdu}\r\n".encode())
                return 0
            index = max(self._storage, default=0) + 1
            self._storage[index] = _Stored(pdu)
            if self._notify:
                self.link.write(f'\r\n+CMTI: "SM",{index}\r\n'.encode())
            return index

    @property
    def stored(self) -> int:
        """Messages in SIM storage (received and not deleted)."""
        with self._lock:
            return len(self._storage)

    def _serve(self) -> None:
        while not self._stop.is_set():
            data = self.link.read()
            if data:
                with self._lock:
                    self._feed(data)
            else:
                self._stop.wait(0.002)

    def _reply(self, text: str) -> None:
        if not self.silent:
            self.link.write(text.encode("latin-1"))

    def _feed(self, data: bytes) -> None:
        self._buffer += data
        while True:
            if self._pending_submit is not None:
                end = min(
                    (p for p in (self._buffer.find(b"\x1a"), self._buffer.find(b"\x1b")) if p >= 0),
                    default=-1,
                )
                if end < 0:
                    return
                body, terminator = self._buffer[:end], self._buffer[end : end + 1]
                self._buffer = self._buffer[end + 1 :]
                length, at = self._pending_submit
                self._pending_submit = None
                if terminator == b"\x1a":
                    self._submit(body.decode("ascii", "replace").strip(), length, at)
                continue
            end = self._buffer.find(b"\r")
            if end < 0:
                return
            line = self._buffer[:end].decode("latin-1").strip()
            self._buffer = self._buffer[end + 1 :].lstrip(b"\n")
            if line:
                if self._echo and not self.silent:
                    self.link.write(line.encode("latin-1") + b"\r")
                self._command(line)

    def _ok(self, *lines: str) -> None:
        self._reply("".join(f"\r\n{line}\r\n" for line in lines) + "\r\nOK\r\n")

    def _command(self, line: str) -> None:
        self.commands.append(line)
        cmd = line.upper()
        if not (
            cmd.startswith("AT") and (self._setting(cmd) or self._status(cmd) or self._sms(cmd))
        ):
            self._reply("\r\nERROR\r\n")

    def _setting(self, cmd: str) -> bool:
        """Echo, text/PDU mode, notifications, reset; False if ``cmd`` is none of them."""
        if cmd in ("ATE0", "ATE1"):
            self._echo = cmd == "ATE1"
        elif cmd == "ATZ":
            self._echo, self._pdu_mode, self._notify, self._route = True, False, False, False
        elif cmd.startswith("AT+CMGF="):
            self._pdu_mode = cmd.endswith("=0")
        elif cmd.startswith("AT+CNMI="):
            self._notify = cmd.startswith("AT+CNMI=2,1")
            self._route = cmd.startswith("AT+CNMI=2,2")
        elif cmd not in ("AT", "AT+CMEE=1", "AT&F"):
            return False
        self._ok()
        return True

    def _status(self, cmd: str) -> bool:
        """SIM, registration, signal; False if ``cmd`` asks none of them."""
        if cmd == "AT+CPIN?":
            self._ok("+CPIN: READY") if self.sim_present else self._reply("\r\n+CME ERROR: 10\r\n")
        elif cmd == "AT+CREG?":
            self._ok(f"+CREG: 0,{1 if self.registered and self.sim_present else 2}")
        elif cmd == "AT+CSQ":
            self._ok(f"+CSQ: {self.signal if self.registered else 99},99")
        else:
            return False
        return True

    def _sms(self, cmd: str) -> bool:
        """Send, read, delete, list; False if ``cmd`` is none of them."""
        if (m := re.fullmatch(r"AT\+CMGS=(\d+)", cmd)) is not None:
            self._prompt_for_submit(int(m.group(1)))
        elif (m := re.fullmatch(r"AT\+CMGR=(\d+)", cmd)) is not None:
            self._read_stored(int(m.group(1)))
        elif (m := re.fullmatch(r"AT\+CMGD=(\d+)(,\d)?", cmd)) is not None:
            self._storage.pop(int(m.group(1)), None)
            self._ok()
        elif cmd == "AT+CMGL=4":
            self._list_stored()
        else:
            return False
        return True

    def _prompt_for_submit(self, length: int) -> None:
        if not self._pdu_mode:
            self._reply("\r\n+CMS ERROR: 304\r\n")
        elif not self.sim_present:
            self._reply("\r\n+CMS ERROR: 310\r\n")
        else:
            self._pending_submit = (length, self.monotonic())
            self._reply("\r\n> ")

    def _read_stored(self, index: int) -> None:
        stored = self._storage.get(index)
        if stored is None:
            self._reply("\r\n+CMS ERROR: 321\r\n")
            return
        status = 1 if stored.read else 0
        stored.read = True
        self._ok(f"+CMGR: {status},,{_tpdu_length(stored.pdu)}\r\n{stored.pdu}")

    def _list_stored(self) -> None:
        lines = []
        for index, stored in sorted(self._storage.items()):
            tpdu_len = _tpdu_length(stored.pdu)
            lines.append(f"+CMGL: {index},{1 if stored.read else 0},,{tpdu_len}\r\n{stored.pdu}")
            stored.read = True
        self._ok(*lines)

    def _submit(self, pdu: str, length: int, at: float) -> None:
        answer = True
        if self.fail_sends:
            result = self.fail_sends.popleft()
            if result not in ("OK", ""):
                self._reply(f"\r\n{result}\r\n")
                return
            answer = result == "OK"  # "": sent, but the answer is lost
        if not self.registered:
            self._reply("\r\n+CMS ERROR: 331\r\n")  # no network service
            return
        submitted = _submitted(pdu, length)
        if submitted is None:
            self._reply("\r\n+CMS ERROR: 304\r\n")
            return
        to, text, dcs, concat = submitted
        part = ReceivedPart(to, text, dcs, pdu, concat, at)
        self.parts.append(part)
        mr = self._next_mr
        self._next_mr = (self._next_mr + 1) % 256
        # record before answering, so a test that saw the answer also sees the message
        if concat is None:
            self.sent.append(SentSms(to, text, (part,)))
        else:
            key = (to, concat[0])
            collected = self._concat.setdefault(key, [])
            collected.append(part)
            if len({p.concat for p in collected}) == concat[1]:
                ordered = sorted(collected, key=lambda p: p.concat[2] if p.concat else 0)
                del self._concat[key]
                self.sent.append(SentSms(to, "".join(p.text for p in ordered), tuple(ordered)))
        if answer:
            self._reply(f"\r\n+CMGS: {mr}\r\n\r\nOK\r\n")
