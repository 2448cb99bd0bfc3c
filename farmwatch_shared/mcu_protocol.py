r"""The farm microcontroller's serial line protocol (FWL/1), as pure functions.

Documented in ``firmware_configs/PROTOCOL.md``. Every line is ASCII, ``$<body>*<CRC>\r\n``:

    microcontroller → agent
    $R,<boot>,<seq>,<channel>,<raw>,<age_ms>     one reading, kept until acknowledged
    $H,<firmware>,<boot>,<interval_s>,<overflowed>,<oldest>   hello: at boot, hourly, on $S
    agent → microcontroller
    $A,<boot>,<seq>                              readings up to seq of that boot are safe
    $S                                           say hello and resend what is unacknowledged

CRC is CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) over the body between ``$`` and ``*``,
as four upper-case hex digits.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

MAX_LINE_BYTES = 96
_CHANNEL = re.compile(r"^[A-Za-z0-9_]{1,8}$")
_NUMBER = re.compile(r"^-?[0-9]{1,9}(\.[0-9]{1,6})?$")
_FIRMWARE = re.compile(r"^[A-Za-z0-9 ._+-]{1,32}$")


@dataclass(frozen=True)
class McuReading:
    """A reading: boot counter and sequence number (its identity), channel, raw value, and how
    long ago it was sampled (it may be resent after the agent was away)."""

    boot: int
    seq: int
    channel: str
    raw: float
    age_ms: int


@dataclass(frozen=True)
class McuHello:
    """Hello: firmware, boot counter (changes at every reboot), sampling interval, how many
    unacknowledged readings the microcontroller had to overwrite since boot, and the oldest
    sequence number it still holds unacknowledged (its next one when it holds none)."""

    firmware: str
    boot: int
    interval_s: int
    overflowed: int
    oldest: int


@dataclass(frozen=True)
class AgentAck:
    """The agent committed every reading of ``boot`` up to ``seq``."""

    boot: int
    seq: int


@dataclass(frozen=True)
class AgentSync:
    """The agent asks for a hello and every unacknowledged reading."""


@dataclass(frozen=True)
class LineError:
    """A line that could not be used; ``cause`` is a stable key for counting."""

    cause: str
    line: bytes


Frame = McuReading | McuHello | AgentAck | AgentSync


def crc16_ccitt(data: bytes) -> int:
    """CRC-16/CCITT-FALSE of ``data``."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def encode_line(body: str) -> bytes:
    """Frame a body (without ``$``) as a complete line with checksum and CRLF."""
    raw = body.encode("ascii")
    return b"$" + raw + b"*" + f"{crc16_ccitt(raw):04X}".encode("ascii") + b"\r\n"


def format_number(value: float) -> str:
    """Format a raw value the way the firmware prints it (integer or up to 3 decimals)."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.3f}".rstrip("0")


def parse_line(line: bytes) -> Frame | LineError:
    """Parse one line (with or without its CR/LF) into a frame or an error."""
    stripped = line.strip(b"\r\n")
    if len(stripped) > MAX_LINE_BYTES:
        return LineError("overlong", line)
    if not stripped.startswith(b"$"):
        return LineError("no_start", line)
    body, star, checksum = stripped[1:].rpartition(b"*")
    if not star:
        return LineError("no_checksum", line)
    try:
        text = body.decode("ascii")
        expected = int(checksum.decode("ascii"), 16)
    except (UnicodeDecodeError, ValueError):
        return LineError("not_ascii", line)
    if len(checksum) != 4 or crc16_ccitt(body) != expected:
        return LineError("bad_checksum", line)
    fields = text.split(",")
    parser = _RECORDS.get(fields[0])
    if parser is None:
        return LineError("unknown_record", line)
    count, parse = parser
    if len(fields) != count:
        return LineError("bad_field_count", line)
    frame = parse(fields)
    return LineError("bad_field", line) if frame is None else frame


def _count(text: str) -> int | None:
    return int(text) if text.isdigit() and len(text) <= 10 else None


def _reading(fields: list[str]) -> McuReading | None:
    _, boot, seq, channel, raw, age = fields
    boot_n, seq_n, age_n = _count(boot), _count(seq), _count(age)
    if boot_n is None or seq_n is None or age_n is None:
        return None
    if not _CHANNEL.match(channel) or not _NUMBER.match(raw):
        return None
    value = float(raw)
    if not math.isfinite(value):
        return None
    return McuReading(boot=boot_n, seq=seq_n, channel=channel, raw=value, age_ms=age_n)


def _hello(fields: list[str]) -> McuHello | None:
    _, firmware, *numbers = fields
    counts = [_count(n) for n in numbers]
    if not _FIRMWARE.match(firmware) or any(c is None for c in counts):
        return None
    boot, interval, overflowed, oldest = (int(c or 0) for c in counts)
    return McuHello(firmware, boot, interval, overflowed, oldest)


def _ack(fields: list[str]) -> AgentAck | None:
    boot, seq = _count(fields[1]), _count(fields[2])
    return None if boot is None or seq is None else AgentAck(boot=boot, seq=seq)


_RECORDS: dict[str, tuple[int, Callable[[list[str]], Frame | None]]] = {
    "R": (6, _reading),
    "H": (6, _hello),
    "A": (3, _ack),
    "S": (1, lambda _fields: AgentSync()),
}


def reading_line(frame: McuReading) -> bytes:
    """The line a microcontroller sends for a reading."""
    return encode_line(
        f"R,{frame.boot},{frame.seq},{frame.channel},{format_number(frame.raw)},{frame.age_ms}"
    )


def hello_line(frame: McuHello) -> bytes:
    """The line a microcontroller sends to say hello."""
    return encode_line(
        f"H,{frame.firmware},{frame.boot},{frame.interval_s},{frame.overflowed},{frame.oldest}"
    )


def ack_line(boot: int, seq: int) -> bytes:
    """The line an agent sends to acknowledge readings."""
    return encode_line(f"A,{boot},{seq}")


SYNC_LINE = encode_line("S")


class LineAssembler:
    """Splits a byte stream into lines, bounding memory: an overlong line is cut and reported."""

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES + 8) -> None:
        self._max = max_line_bytes
        self._buffer = bytearray()
        self._discarding = False

    def feed(self, chunk: bytes) -> list[bytes | LineError]:
        """Add received bytes; return the complete lines (and errors) they finish."""
        out: list[bytes | LineError] = []
        self._buffer += chunk
        while True:
            newline = self._buffer.find(b"\n")
            if newline < 0:
                if len(self._buffer) > self._max:
                    if not self._discarding:
                        out.append(LineError("overlong", bytes(self._buffer[:64])))
                    self._discarding = True
                    self._buffer.clear()
                return out
            line = bytes(self._buffer[: newline + 1])
            del self._buffer[: newline + 1]
            if self._discarding:
                self._discarding = False
                continue
            if len(line) > self._max:
                out.append(LineError("overlong", line[:64]))
                continue
            out.append(line)

    def reset(self) -> None:
        """Forget a partial line (after the port was reopened)."""
        self._buffer.clear()
        self._discarding = False
