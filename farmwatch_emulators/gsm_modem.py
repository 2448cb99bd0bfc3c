"""Emulated GSM/LTE modem on a pty: the AT command subset farmwatch uses, in PDU mode.

It decodes every SMS-SUBMIT it receives with its own decoder (independent of the encoder under
test), reassembles concatenated messages, and records what a phone would display, so tests can
assert the exact text. Faults are injected by setting attributes: ``sim_present``,
``registered``, ``fail_sends`` (queued final result codes such as ``"ERROR"`` or
``"+CMS ERROR: 38"``), ``silent`` (answers nothing) and :meth:`reset` (power cycle).
Incoming messages (:meth:`receive_sms`) are stored and announced with ``+CMTI``, or routed
straight to the host with ``+CMT`` after ``AT+CNMI=2,2``.

**Which module it is** (``identity``): :data:`SIM800` (the classic 2G modem, as before),
:data:`SIM7600` (SIMCom LTE Cat-1/Cat-4) or :data:`EG25` (Quectel LTE Cat-4). Each answers
``ATI``/``AT+CGMI``/``AT+CGMM``/``AT+CGMR`` as the module does, prints its own boot lines after
a reset, numbers its storage from the first index its manual gives (SIM800 1, the LTE modules
0), keeps separate ``"SM"`` (SIM) and ``"ME"`` (module) storages selected with ``AT+CPMS``
(power-on ``"SM","SM","SM"``) and announces ``+CMTI: "<mem3>",<index>``. Only the LTE modules
know ``AT+CEREG`` and ``AT+CESQ`` (the SIM800 answers ``ERROR``).

**Which network it sees** (``network``): ``"gsm"`` registers circuit-switched (``+CREG: 0,1``)
as before; ``"lte"`` is an LTE-only network as in Mexico after the 2G switch-off: ``+CREG:
0,0`` (``lte_creg_stat``, e.g. 4), ``+CGREG: 0,0`` (``lte_cgreg_stat``), ``+CEREG: 0,1``
(5 when ``roaming``), ``+CESQ: 99,99,255,255,<rsrq>,<rsrp>``; SMS still go (over SGs/IMS).
Not ``registered``: ``+CREG: 0,2`` on GSM; ``+CREG: 0,0``, ``+CGREG: 0,0``, ``+CEREG: 0,2``
on LTE; ``AT+CMGS`` answers ``+CMS ERROR: 331``. ``AT+CREG=<n>`` (and ``+CGREG``, ``+CEREG``)
sets the reporting mode: the read answer becomes ``+CEREG: 2,1,"1A2B","01A2D001",7`` and a
change made with :meth:`set_registered` is announced (``+CEREG: 1,"1A2B","01A2D001",7``);
``urc_mode`` is the mode at power-on (as if saved in the module's NVRAM).

Responses follow, byte for byte where the manuals give them: 3GPP TS 27.007 (sections 7.2
+CREG, 10.1.20 +CGREG, 10.1.22 +CEREG, 8.5 +CSQ, 8.69 +CESQ) and TS 27.005 (+CPMS, +CMGR,
+CMGL, +CMGD, +CMGS, +CNMI, +CMTI); SIMCom "SIM800 Series AT Command Manual" V1.09 and
"SIM7500_SIM7600 Series AT Command Manual" V1.07/V2.00 (ATI; "<index> ... start with zero" in
+CMGR/+CMGL; boot ``RDY``, ``+CPIN: READY``, ``SMS DONE``, ``PB DONE``); Quectel "EC2x&EG9x&
EG2x-G&EM05 Series AT Commands Manual" V2.0 (ATI ``Quectel``/``EG25``/``Revision: ...``; boot
``RDY``, ``+CFUN: 1``, ``+CPIN: READY``, ``+QUSIM: 1``, ``+QIND: SMS DONE``, ``+QIND: PB
DONE``). Simplifications: the SIM800's boot is only ``RDY`` (it also prints ``+CFUN: 1``,
``Call Ready``, ``SMS Ready``), storage sizes are fixed (SM 50, ME 255 on the LTE modules), the
IMEI is a test number, and no vendor command beyond these is emulated.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

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


@dataclass(frozen=True)
class ModemIdentity:
    """What one real module says about itself and how it stores messages."""

    name: str
    manufacturer: str
    """``AT+CGMI``."""
    model: str
    """``AT+CGMM``."""
    revision: str
    """``AT+CGMR``."""
    ati: tuple[str, ...]
    """``ATI`` information lines."""
    boot: tuple[str, ...]
    """Unsolicited lines after power-on, in order."""
    storages: dict[str, int]
    """``AT+CPMS`` memories and their sizes."""
    first_index: int
    """Index of the first storage slot."""
    lte: bool
    """Knows ``AT+CEREG`` and ``AT+CESQ``."""


SIM800 = ModemIdentity(
    name="SIM800",
    manufacturer="SIMCOM_Ltd",
    model="SIMCOM_SIM800",
    revision="Revision:1418B04SIM800M32",
    ati=("SIM800 R14.18",),
    boot=("RDY",),
    storages={"SM": 50},
    first_index=1,
    lte=False,
)
SIM7600 = ModemIdentity(
    name="SIM7600G-H",
    manufacturer="SIMCOM INCORPORATED",
    model="SIMCOM_SIM7600G-H",
    revision="+CGMR: LE20B04SIM7600G22",
    ati=(
        "Manufacturer: SIMCOM INCORPORATED",
        "Model: SIMCOM_SIM7600G-H",
        "Revision: SIM7600M22_V2.0",
        "IMEI: 860000000000001",
        "+GCAP: +CGSM",
    ),
    boot=("RDY", "+CPIN: READY", "SMS DONE", "PB DONE"),
    storages={"SM": 50, "ME": 255},
    first_index=0,
    lte=True,
)
EG25 = ModemIdentity(
    name="EG25-G",
    manufacturer="Quectel",
    model="EG25",
    revision="EG25GGBR07A08M2G",
    ati=("Quectel", "EG25", "Revision: EG25GGBR07A08M2G"),
    boot=("RDY", "+CFUN: 1", "+CPIN: READY", "+QUSIM: 1", "+QIND: SMS DONE", "+QIND: PB DONE"),
    storages={"SM": 50, "ME": 255},
    first_index=0,
    lte=True,
)
IDENTITIES = {i.name: i for i in (SIM800, SIM7600, EG25)}

_REGISTRATIONS = ("CREG", "CGREG", "CEREG")
_LOCATION = {"CREG": ('"1A2B"', '"0000A1B2"', 0), "CGREG": ('"1A2B"', '"0000A1B2"', 0)}
_LOCATION["CEREG"] = ('"1A2B"', '"01A2D001"', 7)  # TAC, 28-bit E-UTRAN cell id, AcT E-UTRAN


@dataclass
class GsmModemEmulator:
    """One modem on one pty. ``start`` runs its service thread."""

    link: PtyLink
    monotonic: Callable[[], float] = time.monotonic
    identity: ModemIdentity = SIM800
    network: Literal["gsm", "lte"] = "gsm"
    sim_present: bool = True
    registered: bool = True
    roaming: bool = False
    lte_creg_stat: int = 0
    """``+CREG`` stat on the LTE-only network while registered there (0; 4 "unknown")."""
    lte_cgreg_stat: int = 0
    urc_mode: int = 0
    """``<n>`` of the three registration reports at power-on."""
    signal: int = 21
    rsrp: int = 50
    """``+CESQ`` ``<rsrp>`` on LTE (50: -91 dBm)."""
    rsrq: int = 20
    """``+CESQ`` ``<rsrq>`` on LTE (20: -10 dB)."""
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
        """Power-on state: echo on, text mode, no notifications, empty storages."""
        self._lock = threading.RLock()
        self._buffer = b""
        self._storage: dict[str, dict[int, _Stored]] = {m: {} for m in self.identity.storages}
        self._power_on()
        self._pending_submit: tuple[int, float] | None = None
        self._next_mr = 0
        self._concat: dict[tuple[str, int], list[ReceivedPart]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.resets = 0

    def _power_on(self) -> None:
        self._echo = True
        self._pdu_mode = False
        self._notify = False
        self._route = False
        self._mem = ["SM", "SM", "SM"]
        self._urc = dict.fromkeys(_REGISTRATIONS, self.urc_mode)

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
        """Power cycle: settings back to defaults (echo on, text mode, no notifications,
        storage ``"SM"``); ``announce=False`` loses the boot lines (``RDY`` ...), as when they
        came while nobody listened. Stored messages survive."""
        with self._lock:
            self._power_on()
            self._pending_submit = None
            self._buffer = b""
            self.resets += 1
            if announce:
                self.link.write("".join(f"\r\n{line}\r\n" for line in self.identity.boot).encode())

    def set_registered(self, registered: bool, *, roaming: bool | None = None) -> None:
        """The network comes or goes (or, with ``roaming``, changes between home and
        visited); reported with ``+CREG:``/``+CGREG:``/``+CEREG:`` unsolicited codes for each
        report whose mode ``<n>`` is 1 or 2 and whose stat changes."""
        with self._lock:
            before = {source: self._stat(source) for source in _REGISTRATIONS}
            self.registered = registered
            if roaming is not None:
                self.roaming = roaming
            for source in _REGISTRATIONS:
                stat = self._stat(source)
                if stat is None or stat == before[source] or self._urc[source] == 0:
                    continue
                self.link.write(
                    f"\r\n+{source}: {self._location(source, stat, urc=True)}\r\n".encode()
                )

    def receive_sms(
        self, sender: str, text: str, *, sender_id: bool = False, storage: str | None = None
    ) -> int:
        """An SMS arrives from ``sender`` (``sender_id``: an alphanumeric sender ID, which
        anybody can set to any text): stored in the receive storage (``<mem3>``, or
        ``storage``, as a class 2 message goes to the SIM whatever ``<mem3>`` says) and
        announced with ``+CMTI``, or, after ``AT+CNMI=2,2``, routed straight to the host with
        ``+CMT`` (not stored; returns -1). Returns the storage index."""
        return self.receive_pdu(
            encode_deliver(sender, text, alphanumeric=sender_id), storage=storage
        )

    def receive_pdu(self, pdu: str, storage: str | None = None) -> int:
        """An SMS-DELIVER arrives as the PDU ``pdu`` (hex, with its SMSC part), well formed or
        not: stored and announced as :meth:`receive_sms` does."""
        with self._lock:
            tpdu_len = _tpdu_length(pdu)
            if self._route and storage is None:
                self.link.write(f"\r\n+CMT: ,{tpdu_len}\r\n{pdu}\r\n".encode())
                return -1
            mem = storage or self._mem[2]
            slots = self._storage[mem]
            index = next(i for i in itertools.count(self.identity.first_index) if i not in slots)
            slots[index] = _Stored(pdu)
            if self._notify:
                self.link.write(f'\r\n+CMTI: "{mem}",{index}\r\n'.encode())
            return index

    @property
    def stored(self) -> int:
        """Messages in storage, all memories (received and not deleted)."""
        with self._lock:
            return sum(len(slots) for slots in self._storage.values())

    def stored_in(self, mem: str) -> list[int]:
        """Indexes in use in storage ``mem``."""
        with self._lock:
            return sorted(self._storage[mem])

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

    def _ok_block(self, lines: tuple[str, ...]) -> None:
        """A multi-line information text (``ATI``): one CRLF between its lines."""
        self._reply("\r\n" + "\r\n".join(lines) + "\r\n\r\nOK\r\n")

    def _command(self, line: str) -> None:
        self.commands.append(line)
        cmd = line.upper()
        if not (
            cmd.startswith("AT")
            and (
                self._setting(cmd)
                or self._identification(cmd)
                or self._status(cmd)
                or self._registration(cmd)
                or self._sms(cmd)
            )
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

    def _identification(self, cmd: str) -> bool:
        """``ATI``, ``AT+CGMI``, ``AT+CGMM``, ``AT+CGMR``."""
        answers = {
            "AT+CGMI": self.identity.manufacturer,
            "AT+CGMM": self.identity.model,
            "AT+CGMR": self.identity.revision,
        }
        if cmd == "ATI":
            self._ok_block(self.identity.ati)
        elif cmd in answers:
            self._ok(answers[cmd])
        else:
            return False
        return True

    def _status(self, cmd: str) -> bool:
        """SIM, signal; False if ``cmd`` asks none of them."""
        if cmd == "AT+CPIN?":
            self._ok("+CPIN: READY") if self.sim_present else self._reply("\r\n+CME ERROR: 10\r\n")
        elif cmd == "AT+CSQ":
            self._ok(f"+CSQ: {self.signal if self._registered() else 99},99")
        elif cmd == "AT+CESQ" and self.identity.lte:
            self._ok(f"+CESQ: {self._cesq()}")
        else:
            return False
        return True

    def _cesq(self) -> str:
        """``<rxlev>,<ber>,<rscp>,<ecno>,<rsrq>,<rsrp>`` of the serving cell (27.007 8.69):
        the fields of other access technologies are 99 / 255."""
        if not self._registered():
            return "99,99,255,255,255,255"
        if self.network == "lte":
            return f"99,99,255,255,{self.rsrq},{self.rsrp}"
        rxlev = min(max(-113 + 2 * self.signal + 111, 0), 63)
        return f"{rxlev},0,255,255,255,255"

    def _registered(self) -> bool:
        return self.registered and self.sim_present

    def _stat(self, source: str) -> int | None:
        """The ``<stat>`` of ``source`` now (None: this module has no such report)."""
        if source == "CEREG" and not self.identity.lte:
            return None
        if self.network == "gsm":
            if source == "CEREG":
                return 0
            return 1 if self._registered() else 2
        if not self._registered():
            return 2 if source == "CEREG" else 0
        if source == "CEREG":
            return 5 if self.roaming else 1
        return self.lte_creg_stat if source == "CREG" else self.lte_cgreg_stat

    def _location(self, source: str, stat: int, urc: bool) -> str:
        """``<stat>[,<lac>,<ci>,<AcT>]`` (location only in mode 2 and while registered)."""
        text = str(stat)
        if self._urc[source] >= 2 and stat in (1, 5):
            area, cell, act = _LOCATION[source]
            text += f",{area},{cell},{act}"
        return text if urc else f"{self._urc[source]},{text}"

    def _registration(self, cmd: str) -> bool:
        """``AT+CREG?`` / ``AT+CREG=<n>`` and the same for ``+CGREG``, ``+CEREG``."""
        m = re.fullmatch(r"AT\+(CREG|CGREG|CEREG)(\?|=([0-2]))", cmd)
        if m is None:
            return False
        source = m.group(1)
        stat = self._stat(source)
        if stat is None:
            return False  # ERROR: a 2G module has no +CEREG
        if m.group(3) is not None:
            self._urc[source] = int(m.group(3))
            self._ok()
        else:
            self._ok(f"+{source}: {self._location(source, stat, urc=False)}")
        return True

    def _sms(self, cmd: str) -> bool:
        """Storage, send, read, delete, list; False if ``cmd`` is none of them."""
        if (m := re.fullmatch(r"AT\+CMGS=(\d+)", cmd)) is not None:
            self._prompt_for_submit(int(m.group(1)))
        elif (m := re.fullmatch(r"AT\+CMGR=(\d+)", cmd)) is not None:
            self._read_stored(int(m.group(1)))
        elif (m := re.fullmatch(r"AT\+CMGD=(\d+)(,\d)?", cmd)) is not None:
            self._storage[self._mem[0]].pop(int(m.group(1)), None)
            self._ok()
        elif cmd == "AT+CMGL=4":
            self._list_stored()
        elif cmd == "AT+CPMS?":
            self._ok("+CPMS: " + ",".join(f'"{m}",{self._usage(m)}' for m in self._mem))
        elif cmd.startswith("AT+CPMS="):
            self._select_storage(cmd.removeprefix("AT+CPMS="))
        else:
            return False
        return True

    def _usage(self, mem: str) -> str:
        return f"{len(self._storage[mem])},{self.identity.storages[mem]}"

    def _select_storage(self, arguments: str) -> None:
        """``AT+CPMS=<mem1>[,<mem2>[,<mem3>]]`` (27.005 3.2.2): answers the usage of the three
        memories; an unknown memory is ``+CMS ERROR: 302``."""
        mems = [a.strip().strip('"') for a in arguments.split(",")]
        if not 1 <= len(mems) <= 3 or any(m not in self.identity.storages for m in mems):
            self._reply("\r\n+CMS ERROR: 302\r\n")
            return
        self._mem[: len(mems)] = mems
        self._ok("+CPMS: " + ",".join(self._usage(m) for m in self._mem))

    def _prompt_for_submit(self, length: int) -> None:
        if not self._pdu_mode:
            self._reply("\r\n+CMS ERROR: 304\r\n")
        elif not self.sim_present:
            self._reply("\r\n+CMS ERROR: 310\r\n")
        else:
            self._pending_submit = (length, self.monotonic())
            self._reply("\r\n> ")

    def _read_stored(self, index: int) -> None:
        stored = self._storage[self._mem[0]].get(index)
        if stored is None:
            self._reply("\r\n+CMS ERROR: 321\r\n")
            return
        status = 1 if stored.read else 0
        stored.read = True
        self._ok(f"+CMGR: {status},,{_tpdu_length(stored.pdu)}\r\n{stored.pdu}")

    def _list_stored(self) -> None:
        lines = []
        for index, stored in sorted(self._storage[self._mem[0]].items()):
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
