"""Contract v2: a dense binary encoding of a ``ReadingBatch`` (``docs/contract.md``, "v2").

The same batch as v1, column by column: readings grouped per (sensor, kind, unit), sequence
numbers and timestamps as deltas, each float column as scaled integers with deltas when every
value of the column is exactly ``k / 10**d`` for a small ``d`` (else as IEEE-754 doubles), all
in LEB128 varints, then raw DEFLATE. Decoding gives exactly the ``ReadingBatch`` that v1's JSON
of the same batch decodes to (``farmwatch_shared.contract.decode_message`` accepts both).
Readings must come in strictly increasing ``seq`` order (the outbox's order): that is how the
decoder restores the batch's order after grouping.
"""

from __future__ import annotations

import itertools
import math
import struct
import zlib
from collections.abc import Iterable, Sequence
from typing import Final

from farmwatch_shared.contract import (
    MAX_READINGS_PER_BATCH,
    V2_MAGIC,
    V2_PLAIN_MAGIC,
    Reading,
    ReadingBatch,
    SensorKind,
)

__all__ = [
    "MAGIC",
    "MAGIC_PLAIN",
    "V2Error",
    "decode_v2_body",
    "encode_v2",
    "encode_v2_body",
    "wrap_v2_body",
]

MAGIC: Final = V2_MAGIC
"""First byte of a v2 payload whose body follows as a raw DEFLATE stream (RFC 1951)."""
MAGIC_PLAIN: Final = V2_PLAIN_MAGIC
"""First byte of a v2 payload whose body follows as it is."""
FORMAT: Final = 2
KIND_CODES: Final[dict[SensorKind, int]] = {
    SensorKind.SOIL_MOISTURE: 0,
    SensorKind.RAIN: 1,
    SensorKind.WATER_LEVEL: 2,
}
KINDS_BY_CODE: Final = {code: kind for kind, code in KIND_CODES.items()}
MAX_DECIMALS: Final = 9
DOUBLES: Final = 0xFF
"""Float column mode: little-endian IEEE-754 doubles, one per value."""
VOLUME_NONE, VOLUME_ALL, VOLUME_SOME = 0, 1, 2
FLAGS_ZERO, FLAGS_EACH = 0, 1
_SAFE_INT: Final = 2**53
_DOUBLE = struct.Struct("<d")


class V2Error(ValueError):
    """A v2 body that cannot be decoded (the contract turns it into a ContractError)."""


# varints ----------------------------------------------------------------------------------
def _uvarint(out: bytearray, value: int) -> None:
    if value < 0:
        raise ValueError(f"negative varint {value}")
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _svarint(out: bytearray, value: int) -> None:
    _uvarint(out, value * 2 if value >= 0 else -value * 2 - 1)  # zigzag


def _text(out: bytearray, text: str) -> None:
    data = text.encode("utf-8")
    _uvarint(out, len(data))
    out += data


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def uvarint(self) -> int:
        value = 0
        shift = 0
        while True:
            if self._pos >= len(self._data):
                raise V2Error("truncated varint")
            byte = self._data[self._pos]
            self._pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7
            if shift > 70:
                raise V2Error("varint too long")

    def svarint(self) -> int:
        raw = self.uvarint()
        return raw >> 1 if raw & 1 == 0 else -(raw >> 1) - 1

    def byte(self) -> int:
        if self._pos >= len(self._data):
            raise V2Error("truncated")
        self._pos += 1
        return self._data[self._pos - 1]

    def take(self, count: int) -> bytes:
        if count > len(self._data) - self._pos:
            raise V2Error("truncated")
        self._pos += count
        return self._data[self._pos - count : self._pos]

    def text(self) -> str:
        try:
            return self.take(self.uvarint()).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise V2Error(f"text not UTF-8: {exc}") from None

    def count(self, limit: int) -> int:
        value = self.uvarint()
        if value > limit:
            raise V2Error(f"count {value} over {limit}")
        return value

    def done(self) -> None:
        if self._pos != len(self._data):
            raise V2Error(f"{len(self._data) - self._pos} bytes after the batch")


# float columns ----------------------------------------------------------------------------
def _same(a: float, b: float) -> bool:
    return _DOUBLE.pack(a) == _DOUBLE.pack(b)


def _decimals(values: Sequence[float]) -> int | None:
    """The fewest decimals ``d`` with every value exactly ``k / 10**d`` (|k| < 2**53)."""
    for d in range(MAX_DECIMALS + 1):
        scale = 10**d
        ok = True
        for v in values:
            if not math.isfinite(v) or abs(v) * scale >= _SAFE_INT:
                return None
            if not _same(round(v * scale) / scale, v):
                ok = False
                break
        if ok:
            return d
    return None


def _floats(out: bytearray, values: Sequence[float]) -> None:
    d = _decimals(values)
    if d is None:
        out.append(DOUBLES)
        for v in values:
            out += _DOUBLE.pack(v)
        return
    out.append(d)
    scale = 10**d
    previous = 0
    for v in values:
        k = round(v * scale)
        _svarint(out, k - previous)
        previous = k


def _read_floats(reader: _Reader, count: int) -> list[float]:
    mode = reader.byte()
    if mode == DOUBLES:
        return [_DOUBLE.unpack(reader.take(8))[0] for _ in range(count)]
    if mode > MAX_DECIMALS:
        raise V2Error(f"float column mode {mode}")
    scale = 10**mode
    values = []
    k = 0
    for _ in range(count):
        k += reader.svarint()
        if abs(k) >= _SAFE_INT:
            raise V2Error("scaled value out of range")
        values.append(k / scale)
    return values


# batches ----------------------------------------------------------------------------------
def _groups(readings: Iterable[Reading]) -> dict[tuple[str, SensorKind, str], list[Reading]]:
    groups: dict[tuple[str, SensorKind, str], list[Reading]] = {}
    for reading in readings:
        groups.setdefault((reading.sensor, reading.kind, reading.unit), []).append(reading)
    return groups


def encode_v2_body(batch: ReadingBatch) -> bytes:
    """The v2 body of a batch (before DEFLATE); ValueError if its seqs do not increase."""
    readings = batch.readings
    if any(b.seq <= a.seq for a, b in itertools.pairwise(readings)):
        raise ValueError("contract v2 needs readings in strictly increasing seq order")
    out = bytearray([FORMAT])
    _text(out, batch.farm)
    _text(out, batch.agent)
    base_seq = readings[0].seq if readings else 0
    base_ts = min((r.ts for r in readings), default=0)
    _uvarint(out, base_seq)
    _uvarint(out, base_ts)
    groups = _groups(readings)
    _uvarint(out, len(groups))
    for (sensor, kind, unit), group in groups.items():
        _group(out, sensor, kind, unit, group, base_seq, base_ts)
    return bytes(out)


def _group(
    out: bytearray,
    sensor: str,
    kind: SensorKind,
    unit: str,
    group: list[Reading],
    base_seq: int,
    base_ts: int,
) -> None:
    _text(out, sensor)
    out.append(KIND_CODES[kind])
    _text(out, unit)
    _uvarint(out, len(group))
    previous_seq = base_seq
    for i, reading in enumerate(group):  # first: offset from the base; then steps less one
        _uvarint(out, reading.seq - previous_seq - (1 if i else 0))
        previous_seq = reading.seq
    previous_ts, previous_step = base_ts, 0
    for reading in group:  # delta of deltas: a steady sample rate is a run of zeros
        step = reading.ts - previous_ts
        _svarint(out, step - previous_step)
        previous_ts, previous_step = reading.ts, step
    _floats(out, [r.value for r in group])
    _floats(out, [r.raw for r in group])
    volumes = [r.volume_l for r in group]
    present = [v for v in volumes if v is not None]
    if not present:
        out.append(VOLUME_NONE)
    elif len(present) == len(volumes):
        out.append(VOLUME_ALL)
        _floats(out, present)
    else:
        out.append(VOLUME_SOME)
        out += _bitmap([v is not None for v in volumes])
        _floats(out, present)
    if all(r.flags == 0 for r in group):
        out.append(FLAGS_ZERO)
    else:
        out.append(FLAGS_EACH)
        for reading in group:
            _uvarint(out, reading.flags)


def _bitmap(bits: Sequence[bool]) -> bytes:
    data = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        if bit:
            data[i // 8] |= 1 << (i % 8)
    return bytes(data)


def encode_v2(batch: ReadingBatch) -> bytes:
    """A v2 payload: the magic byte, then the body as raw DEFLATE (level 9)."""
    return wrap_v2_body(encode_v2_body(batch))


def wrap_v2_body(body: bytes) -> bytes:
    """The v2 payload of a body: ``MAGIC`` and the body as raw DEFLATE (level 9), or
    ``MAGIC_PLAIN`` and the body itself when DEFLATE would not make it shorter (a few
    readings sent at once)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    deflated = compressor.compress(body) + compressor.flush()
    if len(deflated) < len(body):
        return bytes([MAGIC]) + deflated
    return bytes([MAGIC_PLAIN]) + body


def decode_v2_body(body: bytes) -> dict[str, object]:
    """The batch a v2 body holds, as the plain structure of v1's JSON (readings as arrays in
    ``Reading``'s field order, in seq order), for the contract to validate into a
    ``ReadingBatch`` exactly as it validates v1. Raises V2Error."""
    reader = _Reader(body)
    if reader.byte() != FORMAT:
        raise V2Error("unknown v2 format")
    farm = reader.text()
    agent = reader.text()
    base_seq = reader.uvarint()
    base_ts = reader.uvarint()
    rows: list[list[object]] = []
    for _ in range(reader.count(MAX_READINGS_PER_BATCH)):
        rows += _read_group(reader, base_seq, base_ts, MAX_READINGS_PER_BATCH - len(rows))
    reader.done()
    rows.sort(key=lambda row: row[0])  # type: ignore[arg-type,return-value]
    for a, b in itertools.pairwise(rows):
        if a[0] == b[0]:
            raise V2Error("a seq appears twice")
    return {"v": 1, "farm": farm, "agent": agent, "readings": rows}


def _read_group(reader: _Reader, base_seq: int, base_ts: int, room: int) -> list[list[object]]:
    sensor = reader.text()
    code = reader.byte()
    if code not in KINDS_BY_CODE:
        raise V2Error(f"unknown kind code {code}")
    kind = KINDS_BY_CODE[code].value
    unit = reader.text()
    count = reader.count(room)
    if count == 0:
        raise V2Error("an empty group")
    seqs = []
    seq = base_seq
    for i in range(count):
        seq += reader.uvarint() + (1 if i else 0)
        seqs.append(seq)
    stamps = []
    ts, step = base_ts, 0
    for _ in range(count):
        step += reader.svarint()
        ts += step
        stamps.append(ts)
    values = _read_floats(reader, count)
    raws = _read_floats(reader, count)
    volumes = _read_volumes(reader, count)
    flags = _read_flags(reader, count)
    return [
        [seqs[i], sensor, kind, stamps[i], values[i], unit, raws[i], volumes[i], flags[i]]
        for i in range(count)
    ]


def _read_volumes(reader: _Reader, count: int) -> list[float | None]:
    mode = reader.byte()
    if mode == VOLUME_NONE:
        return [None] * count
    if mode == VOLUME_ALL:
        return list(_read_floats(reader, count))
    if mode != VOLUME_SOME:
        raise V2Error(f"volume mode {mode}")
    bitmap = reader.take((count + 7) // 8)
    present = [bool(bitmap[i // 8] >> (i % 8) & 1) for i in range(count)]
    floats = iter(_read_floats(reader, sum(present)))
    return [next(floats) if bit else None for bit in present]


def _read_flags(reader: _Reader, count: int) -> list[int]:
    mode = reader.byte()
    if mode == FLAGS_ZERO:
        return [0] * count
    if mode != FLAGS_EACH:
        raise V2Error(f"flags mode {mode}")
    return [reader.uvarint() for _ in range(count)]
