"""What a modem says about its network, read without any I/O: registration lines (``+CREG``,
``+CGREG``, ``+CEREG``, answers and unsolicited codes) and signal quality (``+CSQ``, ``+CESQ``),
mapped as 3GPP TS 27.007 defines them (sections 7.2, 10.1.20, 10.1.22, 8.5, 8.69).

An LTE-only network (Mexico since the 2G switch-off) leaves the circuit-switched registration
``+CREG`` at *not registered* while the EPS registration ``+CEREG`` says *registered*; SMS then
go over SGs or IMS. So registration through any of the three counts.
"""

from __future__ import annotations

from dataclasses import dataclass

REGISTRATION_COMMANDS = ("CREG", "CGREG", "CEREG")
"""The three registration reports: circuit-switched, GPRS/UMTS packet, EPS (LTE)."""

REGISTERED_STATS = frozenset({1, 5, 6, 7, 9, 10})
"""27.007 ``<stat>`` values that are a registration: 1 home, 5 roaming, 6/7 "SMS only" (home,
roaming; E-UTRAN), 9/10 "CSFB not preferred" (home, roaming). 0 not searching, 2 searching,
3 denied, 4 unknown, 8 emergency bearer only, 11 emergency only: not registered."""

ROAMING_STATS = frozenset({5, 7, 10})

STAT_NAMES = {
    0: "no registrado / not registered",
    1: "registrado, red propia / registered, home",
    2: "buscando / searching",
    3: "rechazado / denied",
    4: "desconocido / unknown",
    5: "registrado, roaming / registered, roaming",
    6: "solo SMS, red propia / SMS only, home",
    7: "solo SMS, roaming / SMS only, roaming",
    8: "solo emergencias / emergency only",
    9: "registrado (CSFB no preferido), red propia / registered, home",
    10: "registrado (CSFB no preferido), roaming / registered, roaming",
    11: "solo emergencias / emergency only",
}

ACT_NAMES = {
    0: "GSM",
    1: "GSM Compact",
    2: "UTRAN",
    3: "GSM/EGPRS",
    4: "UTRAN/HSDPA",
    5: "UTRAN/HSUPA",
    6: "UTRAN/HSPA",
    7: "E-UTRAN",
    8: "EC-GSM-IoT",
    9: "E-UTRAN NB-S1",
    10: "E-UTRA/5GCN",
    11: "NR/5GCN",
    12: "NG-RAN",
    13: "E-UTRA-NR",
}
"""27.007 ``<AcT>`` (access technology) values."""


@dataclass(frozen=True)
class Registration:
    """One registration report."""

    source: str
    """``CREG``, ``CGREG`` or ``CEREG``."""
    stat: int
    unsolicited: bool
    """True for an unsolicited result code (``+CEREG: <stat>[,...]``), False for the answer to
    a read command (``+CEREG: <n>,<stat>[,...]``)."""
    n: int | None = None
    """The reporting mode ``<n>`` (answers only)."""
    area: str | None = None
    """``<lac>`` / ``<tac>`` (hex), when the modem reports location."""
    cell: str | None = None
    """``<ci>`` (hex)."""
    act: int | None = None
    """``<AcT>``, when reported."""

    @property
    def registered(self) -> bool:
        """Whether ``stat`` is a registration (home, roaming, SMS only, CSFB not preferred)."""
        return self.stat in REGISTERED_STATS

    @property
    def roaming(self) -> bool:
        """Registered on a visited network."""
        return self.stat in ROAMING_STATS

    def describe(self) -> str:
        """E.g. ``+CEREG 1 (registrado, red propia / registered, home; E-UTRAN)``."""
        act = f"; {ACT_NAMES.get(self.act, str(self.act))}" if self.act is not None else ""
        return f"+{self.source} {self.stat} ({STAT_NAMES.get(self.stat, '?')}{act})"


def _int(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdecimal() and len(text) <= 9 else None


def _unquoted(text: str) -> str | None:
    text = text.strip().strip('"')
    return text or None


def parse_registration(line: str) -> Registration | None:
    """The registration in a ``+CREG:``/``+CGREG:``/``+CEREG:`` line, None if ``line`` is not
    one or is malformed.

    27.007 gives the read command's answer as ``<n>,<stat>[,<lac>,<ci>[,<AcT>...]]`` and the
    unsolicited code as ``<stat>[,<lac>,<ci>[,<AcT>...]]``, where ``<lac>`` is a quoted string
    or empty. So a line whose second field is a bare integer is an answer; a single field, or a
    second field that is quoted or empty, is an unsolicited code. (Trailing fields such as
    ``<rac>``, ``<cause_type>``, PSM timers are ignored.)
    """
    head, sep, rest = line.partition(":")
    source = head.strip().removeprefix("+")
    if not sep or not head.strip().startswith("+") or source not in REGISTRATION_COMMANDS:
        return None
    fields = rest.split(",")
    first = _int(fields[0])
    if first is None:
        return None
    second = _int(fields[1]) if len(fields) > 1 else None
    if second is not None:  # answer: <n>,<stat>,...
        n, stat, location = first, second, fields[2:]
        unsolicited = False
    elif len(fields) > 1 and fields[1].strip() and not fields[1].strip().startswith('"'):
        return None  # neither an integer <stat> nor a quoted (or empty) <lac>
    else:  # unsolicited: <stat>,...
        n, stat, location = None, first, fields[1:]
        unsolicited = True
    if stat not in STAT_NAMES or (n is not None and n > 5):
        return None
    area = _unquoted(location[0]) if location else None
    cell = _unquoted(location[1]) if len(location) > 1 else None
    act = _int(location[2]) if len(location) > 2 else None
    return Registration(source, stat, unsolicited, n, area, cell, act)


@dataclass(frozen=True)
class SignalReport:
    """Signal quality in physical units. Each value is the lower edge of the 27.007 interval
    the modem reported (``+CESQ`` RSRP 50 means −91 dBm ≤ RSRP < −90 dBm: −91), the open-ended
    bottom interval reported one step below its bound (RSRP 0, "< −140 dBm": −141); None: not
    known, not detectable, or not this access technology."""

    rssi_dbm: int | None
    """``+CSQ`` ``<rssi>``: −113 + 2·n dBm (0: −113 or less; 31: −51 or more)."""
    ber: int | None
    """``+CSQ`` ``<ber>`` as RXQUAL 0–7."""
    rsrp_dbm: int | None = None
    """``+CESQ`` ``<rsrp>``: n − 141 dBm (LTE reference signal received power)."""
    rsrq_db: float | None = None
    """``+CESQ`` ``<rsrq>``: n / 2 − 20 dB (LTE reference signal received quality)."""
    rxlev_dbm: int | None = None
    """``+CESQ`` ``<rxlev>``: n − 111 dBm (GSM)."""
    rscp_dbm: int | None = None
    """``+CESQ`` ``<rscp>``: n − 121 dBm (UMTS)."""
    ecno_db: float | None = None
    """``+CESQ`` ``<ecno>``: n / 2 − 24.5 dB (UMTS)."""

    def describe(self) -> str:
        """E.g. ``RSSI -73 dBm, RSRP -91 dBm, RSRQ -10.0 dB``."""
        parts = []
        if self.rssi_dbm is not None:
            parts.append(f"RSSI {self.rssi_dbm} dBm")
        if self.rsrp_dbm is not None:
            parts.append(f"RSRP {self.rsrp_dbm} dBm")
        if self.rsrq_db is not None:
            parts.append(f"RSRQ {self.rsrq_db:.1f} dB")
        return ", ".join(parts) or "sin señal conocida / no known signal"


def _values(line: str, prefix: str, count: int) -> list[int]:
    head, sep, rest = line.partition(":")
    if not sep or head.strip() != prefix:
        raise ValueError(f"not a {prefix} line: {line[:80]!r}")
    fields = [f.strip() for f in rest.split(",")]
    if len(fields) < count or not all(f.isdecimal() and len(f) <= 9 for f in fields[:count]):
        raise ValueError(f"malformed {prefix}: {line[:80]!r}")
    return [int(f) for f in fields[:count]]


def _scaled(value: int, top: int, offset: float, step: float) -> float | None:
    return offset + value * step if 0 <= value <= top else None


def parse_csq(line: str) -> SignalReport:
    """``+CSQ: <rssi>,<ber>`` (27.007 8.5). Raises ValueError on a malformed line; values out
    of range (99: not known) are None."""
    rssi, ber = _values(line, "+CSQ", 2)
    return SignalReport(
        rssi_dbm=-113 + 2 * rssi if 0 <= rssi <= 31 else None,
        ber=ber if 0 <= ber <= 7 else None,
    )


def parse_cesq(line: str, csq: SignalReport | None = None) -> SignalReport:
    """``+CESQ: <rxlev>,<ber>,<rscp>,<ecno>,<rsrq>,<rsrp>`` (27.007 8.69), merged into the
    ``+CSQ`` report ``csq`` if given. 99 (rxlev, ber) and 255 (the others) mean not known or
    not this access technology. Raises ValueError on a malformed line."""
    rxlev, ber, rscp, ecno, rsrq, rsrp = _values(line, "+CESQ", 6)
    rxlev_dbm = _scaled(rxlev, 63, -111, 1)
    rscp_dbm = _scaled(rscp, 96, -121, 1)
    rsrp_dbm = _scaled(rsrp, 97, -141, 1)
    return SignalReport(
        rssi_dbm=csq.rssi_dbm if csq is not None else None,
        ber=csq.ber if csq is not None else (ber if 0 <= ber <= 7 else None),
        rsrp_dbm=int(rsrp_dbm) if rsrp_dbm is not None else None,
        rsrq_db=_scaled(rsrq, 34, -20.0, 0.5),
        rxlev_dbm=int(rxlev_dbm) if rxlev_dbm is not None else None,
        rscp_dbm=int(rscp_dbm) if rscp_dbm is not None else None,
        ecno_db=_scaled(ecno, 49, -24.5, 0.5),
    )


@dataclass(frozen=True)
class ModemStatus:
    """A snapshot of the modem's state, replaced whole (safe to read from any thread)."""

    profile: str
    """Name of the modem profile in use (``classic-2g``, ``simcom-lte``, ...)."""
    model: str | None = None
    """``AT+CGMM`` answer, when the profile was detected."""
    registrations: tuple[Registration, ...] = ()
    """The latest report of each registration queried or announced."""
    signal: SignalReport | None = None
    checked_ms: int | None = None
    """Wall time of the last full check (``refresh_status``)."""

    @property
    def via(self) -> str | None:
        """The first registration (in ``+CREG``, ``+CGREG``, ``+CEREG`` order) that is
        registered, None when none is."""
        for source in REGISTRATION_COMMANDS:
            reg = self.registration(source)
            if reg is not None and reg.registered:
                return source
        return None

    def registration(self, source: str) -> Registration | None:
        """The latest report of ``source``."""
        return next((r for r in self.registrations if r.source == source), None)

    def with_registration(self, reg: Registration) -> ModemStatus:
        """This status with ``reg`` replacing the previous report of its source."""
        others = tuple(r for r in self.registrations if r.source != reg.source)
        ordered = sorted((*others, reg), key=lambda r: REGISTRATION_COMMANDS.index(r.source))
        return ModemStatus(self.profile, self.model, tuple(ordered), self.signal, self.checked_ms)

    def describe(self) -> str:
        """One line for operators: profile, registrations, signal."""
        regs = ", ".join(r.describe() for r in self.registrations) or "-"
        via = f"vía / via +{self.via}" if self.via else "sin registro / not registered"
        model = f" ({self.model})" if self.model else ""
        signal = f"; {self.signal.describe()}" if self.signal is not None else ""
        return f"{self.profile}{model}: {via}; {regs}{signal}"
