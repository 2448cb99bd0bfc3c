"""SDI-12 (version 1.4) commands and responses, as pure functions (no I/O).

Every command is ``<address><command>!``; every response starts with the address and ends with
<CR><LF>. A measurement (``aM!``, ``aMC!``, ``aM1!``…) answers ``atttn``: after ``ttt`` seconds at
most, ``n`` values are ready; the sensor says so earlier with a service request ``a<CR><LF>``.
Data commands ``aD0!``…``aD9!`` return the values, each with a mandatory sign (``+1.23-4``).
With the CRC variant the values are followed by 3 characters carrying a CRC-16 (poly 0xA001,
initial 0) of everything from the address to the last value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edge.drivers.crc import crc16_a001

ADDRESS_PATTERN = re.compile(r"^[0-9A-Za-z]$")
_VALUE = re.compile(r"[+-]\d{1,7}(?:\.\d{0,7})?|[+-]\.\d{1,7}")
MEASURE_COMMANDS = frozenset(
    ["M", "MC", *(f"M{i}" for i in range(1, 10)), *(f"MC{i}" for i in range(1, 10))]
)


class Sdi12Error(ValueError):
    """A response that does not follow SDI-12. ``cause`` is a stable key."""

    def __init__(self, cause: str, detail: str = "") -> None:
        super().__init__(f"{cause}: {detail}" if detail else cause)
        self.cause = cause
        self.detail = detail


@dataclass(frozen=True)
class Identification:
    """Answer to ``aI!``."""

    address: str
    sdi12_version: str
    vendor: str
    model: str
    sensor_version: str
    extra: str


def command(address: str, body: str) -> bytes:
    """The bytes of ``<address><body>!``."""
    if not ADDRESS_PATTERN.match(address) and address != "?":
        raise ValueError(f"bad SDI-12 address {address!r}")
    return f"{address}{body}!".encode("ascii")


def crc_chars(data: bytes) -> bytes:
    """The 3 ASCII characters encoding the SDI-12 CRC of ``data`` (6 bits each, 0x40 set)."""
    crc = crc16_a001(data, 0)
    return bytes([0x40 | (crc >> 12), 0x40 | ((crc >> 6) & 0x3F), 0x40 | (crc & 0x3F)])


def _body(line: bytes, address: str) -> str:
    if not line.endswith(b"\r\n"):
        raise Sdi12Error("sdi12_garbled", f"no CR LF: {line[:40]!r}")
    try:
        text = line[:-2].decode("ascii")
    except UnicodeDecodeError:
        raise Sdi12Error("sdi12_garbled", f"not ASCII: {line[:40]!r}") from None
    if not text or text[0] != address:
        raise Sdi12Error("sdi12_address", f"expected {address!r}, got {text[:40]!r}")
    return text[1:]


def parse_ack(line: bytes, address: str) -> None:
    """Check an ``a<CR><LF>`` answer (acknowledge active, address query, service request)."""
    if _body(line, address):
        raise Sdi12Error("sdi12_garbled", f"expected a bare address, got {line[:40]!r}")


def parse_address(line: bytes) -> str:
    """The address in an answer to ``?!``."""
    text = line[:-2].decode("ascii", errors="replace") if line.endswith(b"\r\n") else ""
    if len(text) != 1 or not ADDRESS_PATTERN.match(text):
        raise Sdi12Error("sdi12_garbled", f"address query answer {line[:40]!r}")
    return text


def parse_identification(line: bytes, address: str) -> Identification:
    """Parse ``allccccccccmmmmmmvvv[xxx…]`` (version, vendor, model, sensor version, extra)."""
    body = _body(line, address)
    if len(body) < 19 or not body[:2].isdigit():
        raise Sdi12Error("sdi12_garbled", f"identification {line[:60]!r}")
    return Identification(
        address=address,
        sdi12_version=f"{body[0]}.{body[1]}",
        vendor=body[2:10].strip(),
        model=body[10:16].strip(),
        sensor_version=body[16:19],
        extra=body[19:].strip(),
    )


def parse_measurement(line: bytes, address: str) -> tuple[int, int]:
    """(seconds until ready, number of values) from an ``atttn`` answer to ``aM!``."""
    body = _body(line, address)
    if len(body) != 4 or not body.isdigit():
        raise Sdi12Error("sdi12_garbled", f"measurement answer {line[:40]!r}")
    return int(body[:3]), int(body[3])


def parse_data(line: bytes, address: str, *, crc: bool) -> list[float]:
    """Values of an answer to ``aDn!`` (checking the CRC when the measurement asked for it)."""
    body = _body(line, address)
    if crc:
        if len(body) < 3:
            raise Sdi12Error("sdi12_crc", f"no CRC in {line[:60]!r}")
        expected = crc_chars(line[: 1 + len(body) - 3])
        if body[-3:].encode("ascii") != expected:
            raise Sdi12Error("sdi12_crc", f"CRC mismatch in {line[:60]!r}")
        body = body[:-3]
    values = _VALUE.findall(body)
    if "".join(values) != body:
        raise Sdi12Error("sdi12_garbled", f"values {line[:60]!r}")
    return [float(v) for v in values]
