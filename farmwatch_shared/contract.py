"""The farmwatch MQTT message contract, version 1: topics, payloads, encoding, limits.

This module is the contract the edge agent and the collector share; both import it.
The human-readable description with example payloads is ``docs/contract.md``.
"""

from __future__ import annotations

import enum
import math
import zlib
from collections.abc import Iterable
from typing import Annotated, Final, Literal, TypeVar

import msgspec

__all__ = [
    "COMMITTED_SUBSCRIPTION",
    "DEAD_LETTER_TOPIC",
    "EARLIEST_TS_MS",
    "IDENT_PATTERN",
    "MAX_COMMITTED_RANGES",
    "MAX_DEVICES_PER_STATUS",
    "MAX_FUTURE_MS",
    "MAX_PAYLOAD_BYTES",
    "MAX_READINGS_PER_BATCH",
    "READINGS_SUBSCRIPTION",
    "STATUS_SUBSCRIPTION",
    "TOPIC_ROOT",
    "UNITS",
    "V2_MAGIC",
    "V2_PLAIN_MAGIC",
    "VALUE_LIMITS",
    "VERSION",
    "ZLIB_FIRST_BYTE",
    "AgentStatus",
    "Committed",
    "ContractError",
    "DeadLetter",
    "DeviceHealth",
    "Ident",
    "Message",
    "Reading",
    "ReadingBatch",
    "ReadingFlag",
    "SensorKind",
    "SeqRange",
    "committed_topic",
    "decode_batch",
    "decode_committed",
    "decode_message",
    "decode_status",
    "encode_batch",
    "encode_committed",
    "encode_status",
    "parse_topic",
    "reading_problem",
    "readings_topic",
    "seq_ranges",
    "status_topic",
]

VERSION: Final = 1
TOPIC_ROOT: Final = "farmwatch/v1"
READINGS_SUBSCRIPTION: Final = f"{TOPIC_ROOT}/+/+/readings"
STATUS_SUBSCRIPTION: Final = f"{TOPIC_ROOT}/+/+/status"
COMMITTED_SUBSCRIPTION: Final = f"{TOPIC_ROOT}/+/+/committed"
DEAD_LETTER_TOPIC: Final = "farmwatch/deadletter/v1"

IDENT_PATTERN: Final = r"^[a-z0-9][a-z0-9_-]{0,31}$"
MAX_PAYLOAD_BYTES: Final = 256 * 1024
"""Largest payload (compressed or not, and after decompression) a consumer accepts."""
MAX_READINGS_PER_BATCH: Final = 5000
ZLIB_FIRST_BYTE: Final = 0x78
"""A payload starting with this byte is a zlib stream (RFC 1950) holding the JSON document."""
V2_MAGIC: Final = 0xF2
"""A reading batch payload starting with this byte is contract v2 (``contract_v2``): a raw
DEFLATE stream of the dense binary body follows."""
V2_PLAIN_MAGIC: Final = 0xF3
"""A reading batch payload starting with this byte is contract v2, its body not compressed."""

Ident = Annotated[str, msgspec.Meta(pattern=IDENT_PATTERN)]


class SensorKind(enum.StrEnum):
    """The physical quantity a sensor measures; also the InfluxDB measurement name."""

    SOIL_MOISTURE = "soil_moisture"
    RAIN = "rain"
    WATER_LEVEL = "water_level"


UNITS: Final[dict[SensorKind, str]] = {
    SensorKind.SOIL_MOISTURE: "%",  # volumetric water content
    SensorKind.RAIN: "mm",  # rain since the previous reading of the gauge
    SensorKind.WATER_LEVEL: "%",  # of the vessel's usable height
}
VALUE_LIMITS: Final[dict[SensorKind, tuple[float, float]]] = {
    SensorKind.SOIL_MOISTURE: (0.0, 100.0),
    SensorKind.RAIN: (0.0, 500.0),
    SensorKind.WATER_LEVEL: (0.0, 100.0),
}


class ReadingFlag(enum.IntFlag):
    """Quality flags carried with a reading (bit field)."""

    NONE = 0
    CLOCK_UNSYNCED = 1
    """The edge clock was not known to be synchronised when the reading was taken."""
    CLOCK_CORRECTED = 2
    """The timestamp was corrected after the edge clock synchronised."""


class Reading(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """One calibrated sensor reading, encoded as a JSON array in this field order."""

    seq: Annotated[int, msgspec.Meta(ge=0)]
    """Per-agent sequence number; strictly increasing, survives restarts."""
    sensor: Ident
    kind: SensorKind
    ts: Annotated[int, msgspec.Meta(ge=0)]
    """UTC time the edge took the reading, in milliseconds since the Unix epoch."""
    value: float
    unit: str
    raw: float
    """The uncalibrated value as the device reported it."""
    volume_l: float | None = None
    """Water volume in litres (water_level only)."""
    flags: int = 0


class ReadingBatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A batch of readings published by one agent."""

    v: Literal[1]
    farm: Ident
    agent: Ident
    readings: Annotated[
        list[Reading], msgspec.Meta(min_length=1, max_length=MAX_READINGS_PER_BATCH)
    ]


MAX_DEVICES_PER_STATUS: Final = 1000


class DeviceHealth(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """The health of one radio device an agent reads (a LoRaWAN sensor), in its status."""

    id: Ident
    """The device's id in the farm file (``[[lorawan_devices]]``)."""
    last_uplink_ts: int | None = None
    """Network time of its last uplink (ms since the Unix epoch)."""
    fcnt: int | None = None
    """Frame counter of that uplink."""
    rssi_dbm: float | None = None
    """Best gateway RSSI of that uplink."""
    snr_db: float | None = None
    """Best gateway SNR of that uplink."""
    battery_v: float | None = None
    """Battery voltage, as the device reports it in its payload."""
    battery_pct: float | None = None
    """Battery level (%), from the payload or the network server's device-status request."""
    margin_db: int | None = None
    """Link margin the device reported to the network server's device-status request."""
    lost_uplinks: int = 0
    """Uplinks never received, counted from the gaps in the frame counter."""
    duplicates: int = 0
    """Uplinks received again and stored once (since the agent started)."""
    refused: int = 0
    """Uplinks or values refused and quarantined (since the agent started)."""
    rejoins: int = 0
    """Frame-counter resets seen (a rejoin, or a device that restarted its session)."""


class AgentStatus(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """Retained agent status; the agent's last will publishes ``state="offline"``."""

    v: Literal[1]
    farm: Ident
    agent: Ident
    state: Literal["online", "offline"]
    ts: int | None = None
    version: str = ""
    outbox_backlog: int = 0
    dropped_total: int = 0
    rejected_lines: int = 0
    clock_synced: bool = True
    devices: Annotated[
        tuple[DeviceHealth, ...], msgspec.Meta(max_length=MAX_DEVICES_PER_STATUS)
    ] = ()
    """The agent's radio devices (LoRaWAN); omitted when it has none."""


SeqRange = tuple[Annotated[int, msgspec.Meta(ge=0)], Annotated[int, msgspec.Meta(ge=0)]]
"""An inclusive range of reading sequence numbers ``(first, last)``."""
MAX_COMMITTED_RANGES: Final = 10_000


class Committed(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The collector's word that readings of one agent are stored (in the database, or durably
    quarantined): published on ``committed_topic(farm, agent)`` after the write, QoS 1. Only then
    does the agent delete them from its outbox; a reading never covered is sent again."""

    v: Literal[1]
    farm: Ident
    agent: Ident
    seqs: Annotated[list[SeqRange], msgspec.Meta(min_length=1, max_length=MAX_COMMITTED_RANGES)]
    """Inclusive ``[first, last]`` ranges of the sequence numbers stored."""


class DeadLetter(msgspec.Struct, frozen=True):
    """What the collector publishes on ``DEAD_LETTER_TOPIC`` for input it refused."""

    reason: str
    topic: str
    payload_hex: str
    """The refused payload (at most 1 KiB of it), hex-encoded."""
    detail: str = ""
    quarantined: bool = False
    """Whether the collector holds the whole payload in its durable quarantine."""


class ContractError(ValueError):
    """A payload or topic that does not follow this contract. ``cause`` is a stable key."""

    def __init__(self, cause: str, detail: str = "") -> None:
        super().__init__(f"{cause}: {detail}" if detail else cause)
        self.cause = cause
        self.detail = detail


def readings_topic(farm: str, agent: str) -> str:
    """Topic an agent publishes reading batches to."""
    return f"{TOPIC_ROOT}/{farm}/{agent}/readings"


def status_topic(farm: str, agent: str) -> str:
    """Retained topic holding an agent's online/offline status."""
    return f"{TOPIC_ROOT}/{farm}/{agent}/status"


def committed_topic(farm: str, agent: str) -> str:
    """Topic the collector confirms an agent's stored readings on (``Committed``)."""
    return f"{TOPIC_ROOT}/{farm}/{agent}/committed"


def seq_ranges(seqs: Iterable[int]) -> list[SeqRange]:
    """Sorted, merged inclusive ranges covering ``seqs`` (e.g. 1, 2, 3, 7 → [(1, 3), (7, 7)])."""
    ranges: list[SeqRange] = []
    for seq in sorted(set(seqs)):
        if ranges and ranges[-1][1] == seq - 1:
            ranges[-1] = (ranges[-1][0], seq)
        else:
            ranges.append((seq, seq))
    return ranges


def parse_topic(topic: str) -> tuple[str, str, str]:
    """Split ``farmwatch/v1/<farm>/<agent>/<leaf>`` into (farm, agent, leaf)."""
    parts = topic.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != TOPIC_ROOT:
        raise ContractError("bad_topic", topic[:200])
    return parts[2], parts[3], parts[4]


_T = TypeVar("_T")
_batch_encoder = msgspec.json.Encoder()
_batch_decoder = msgspec.json.Decoder(ReadingBatch)
_status_decoder = msgspec.json.Decoder(AgentStatus)
_committed_decoder = msgspec.json.Decoder(Committed)


def encode_batch(batch: ReadingBatch, *, compress: bool = False) -> bytes:
    """Serialise a batch as JSON, zlib-compressed when ``compress`` is set."""
    body = _batch_encoder.encode(batch)
    return zlib.compress(body, 9) if compress else body


def encode_committed(committed: Committed) -> bytes:
    """Serialise a commit confirmation."""
    return _batch_encoder.encode(committed)


def decode_committed(payload: bytes) -> Committed:
    """Decode and validate a commit confirmation; raise ContractError when invalid."""
    committed = _decode(_committed_decoder, payload)
    if any(first > last for first, last in committed.seqs):
        raise ContractError("schema", "a seq range ends before it starts")
    return committed


def encode_status(status: AgentStatus) -> bytes:
    """Serialise an agent status."""
    return _batch_encoder.encode(status)


def _inflate(payload: bytes) -> bytes:
    """The JSON document of a payload: the payload itself, or the zlib stream it is, which must
    be complete (its Adler-32 trailer checked), end the payload and inflate to at most
    MAX_PAYLOAD_BYTES."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError("oversized", f"{len(payload)} bytes")
    if payload[:1] != bytes([ZLIB_FIRST_BYTE]):
        return payload
    return _inflate_stream(payload, zlib.MAX_WBITS)


def _inflate_stream(stream: bytes, wbits: int) -> bytes:
    """A complete compressed stream (zlib, or raw DEFLATE with negative ``wbits``) that ends
    the payload and inflates to at most MAX_PAYLOAD_BYTES."""
    inflater = zlib.decompressobj(wbits)
    try:
        body = inflater.decompress(stream, MAX_PAYLOAD_BYTES + 1)
    except zlib.error as exc:
        raise ContractError("bad_compression", str(exc)) from None
    if len(body) > MAX_PAYLOAD_BYTES:
        raise ContractError("oversized", "decompressed payload too large")
    # a stream cut short inflates without error (even one missing only part of its checksum):
    # only ``eof`` says the end of the stream, checksum verified, was reached
    if not inflater.eof:
        raise ContractError("bad_compression", "truncated zlib stream")
    if inflater.unused_data:
        raise ContractError(
            "bad_compression", f"{len(inflater.unused_data)} bytes after the stream"
        )
    return body


def _decode(decoder: msgspec.json.Decoder[_T], payload: bytes) -> _T:
    """Inflate and decode; every failure is a ContractError (unknown fields are refused by the
    structs; nesting deeper than msgspec's recursion limit is ``too_deep``)."""
    body = _inflate(payload)
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise ContractError("schema", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ContractError("malformed", str(exc)) from None
    except RecursionError:
        raise ContractError("too_deep", "nested deeper than the decoder allows") from None


def decode_batch(payload: bytes) -> ReadingBatch:
    """Decode and validate a reading batch payload, v1 (JSON, maybe zlib) or v2 (dense binary,
    ``contract_v2``): the same batch either way; raise ContractError when invalid."""
    if payload[:1] in (bytes([V2_MAGIC]), bytes([V2_PLAIN_MAGIC])):
        return _decode_v2(payload)
    return _decode(_batch_decoder, payload)


def _decode_v2(payload: bytes) -> ReadingBatch:
    from farmwatch_shared import contract_v2

    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError("oversized", f"{len(payload)} bytes")
    body = payload[1:]
    if payload[0] == V2_MAGIC:
        body = _inflate_stream(body, -zlib.MAX_WBITS)
    try:
        plain = contract_v2.decode_v2_body(body)
        return msgspec.convert(plain, ReadingBatch)
    except contract_v2.V2Error as exc:
        raise ContractError("malformed", f"v2: {exc}") from None
    except msgspec.ValidationError as exc:
        raise ContractError("schema", str(exc)) from None


def decode_status(payload: bytes) -> AgentStatus:
    """Decode and validate an agent status payload; raise ContractError when invalid."""
    return _decode(_status_decoder, payload)


Message = ReadingBatch | AgentStatus | Committed
"""What a message on a ``farmwatch/v1`` topic carries."""


def decode_message(topic: str, payload: bytes) -> Message | None:
    """Decode a message from its topic and payload, checking that the payload names the farm
    and agent of its topic. None is an empty status payload (a retained status being cleared:
    nothing to do). Raise ContractError (``bad_topic``, ``topic_mismatch``, or a payload cause)."""
    farm, agent, leaf = parse_topic(topic)
    message: Message
    if leaf == "readings":
        message = decode_batch(payload)
    elif leaf == "status":
        if not payload:
            return None
        message = decode_status(payload)
    elif leaf == "committed":
        message = decode_committed(payload)
    else:
        raise ContractError("bad_topic", topic[:200])
    if message.farm != farm or message.agent != agent:
        raise ContractError(
            "topic_mismatch", f"topic {farm}/{agent}, payload {message.farm}/{message.agent}"
        )
    return message


EARLIEST_TS_MS: Final = 1_577_836_800_000
"""2020-01-01T00:00:00Z: no farmwatch reading is older; an earlier time is a clock that was
never set (a Raspberry Pi without a real-time clock boots in 1970)."""
MAX_FUTURE_MS: Final = 24 * 3600 * 1000
"""How far ahead of the receiver's clock a timestamp may be."""


def reading_problem(reading: Reading, now_ms: int | None = None) -> str | None:
    """Return why a well-formed reading is impossible, or None if it is plausible. With
    ``now_ms`` (the receiver's clock) its timestamp is checked too."""
    if now_ms is not None and not EARLIEST_TS_MS <= reading.ts <= now_ms + MAX_FUTURE_MS:
        return "implausible_time"
    if reading.unit != UNITS[reading.kind]:
        return "wrong_unit"
    low, high = VALUE_LIMITS[reading.kind]
    if not math.isfinite(reading.value) or not low <= reading.value <= high:
        return "value_out_of_range"
    if not math.isfinite(reading.raw):
        return "raw_not_finite"
    if reading.volume_l is not None and (
        reading.kind is not SensorKind.WATER_LEVEL
        or not math.isfinite(reading.volume_l)
        or reading.volume_l < 0
    ):
        return "bad_volume"
    return None
