"""LoRaWAN payload codecs: the vendors' documented byte layouts as data, and small pure
decoders that read them.

A codec turns an uplink's fPort and bytes (or the network server's own decoded object) into
*raw* point values in the units its points name (``distance_mm``, ``moisture_pct``,
``depth_mm``…); calibration happens later, in the committer, as for every source. A value the
device itself marks as a sensor fault (the ultrasonic "no target" reading, a submersible
sensor's "collection failed") is not a value: it is returned as a fault of its point, and the
source refuses and counts it. A frame the codec cannot read at all (wrong fPort, short or
overlong bytes, an unknown channel) raises ``CodecError``.

Sources of the layouts (see also the test vectors in ``tests/unit/test_lorawan_codecs.py``):

- Dragino LDDS75 and DDS75-LB user manuals (wiki.dragino.com), "Uplink Payload" (FPORT=2: BAT,
  distance in mm, interrupt flag, DS18B20 temperature, sensor flag; 0x0000 "no sensor",
  values below 280 mm sent as 0x0014 "invalid") and "Device Status" (FPORT=5);
- Dragino LSE01 user manual, "Uplink Payload" (FPORT=2: BAT, DS18B20, soil moisture /100 %,
  soil temperature /100 °C, conductivity µS/cm, flags) and Dragino's LSE01 decoder v1.2.1
  (github.com/dragino/dragino-end-node-decoder), where bit 7 of the last byte selects the raw
  "original value" mode;
- Milesight EM500-SWL payload definition (github.com/Milesight-IoT/SensorDecoders,
  EM_Series/EM500_Series/EM500-SWL): channel/type TLV on fPort 85, ``01 75`` battery %,
  ``03 77`` water level in cm (uint16 little-endian; 0xFFFF collection failed, 0xFFFD out of
  range).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "CODECS",
    "Codec",
    "CodecError",
    "Decoded",
    "Payload",
    "UnknownCodecError",
    "codec_for",
]

FieldType = Literal["u8", "u16", "i16", "u16le"]
Role = Literal["point", "battery_mv", "battery_pct", "flag"]


class CodecError(ValueError):
    """A frame the codec cannot read; ``cause`` is a stable key (``wrong_fport``…)."""

    def __init__(self, cause: str, detail: str = "") -> None:
        super().__init__(f"{cause}: {detail}" if detail else cause)
        self.cause = cause
        self.detail = detail


class UnknownCodecError(ValueError):
    """A farm file names a codec that does not exist."""


@dataclass(frozen=True)
class Payload:
    """What a codec reads: the uplink's fPort and bytes, and the object the network server's
    own payload decoder made of them (None when it has none)."""

    fport: int
    data: bytes
    obj: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Decoded:
    """Raw point values of one uplink, the points whose value is a sensor fault (point →
    cause), and the battery; ``info`` for a device-status frame that carries no reading."""

    values: Mapping[str, float] = field(default_factory=dict)
    faults: Mapping[str, str] = field(default_factory=dict)
    battery_v: float | None = None
    battery_pct: float | None = None
    info: bool = False


@dataclass(frozen=True)
class Codec:
    """A decoder and the points it can give (what ``source.point`` may name)."""

    name: str
    points: frozenset[str]
    decode: Callable[[Payload], Decoded]


# --- fixed layouts (Dragino) -------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One field of a fixed layout: where it is, how it is encoded, what it becomes."""

    name: str
    offset: int
    type: FieldType
    scale: float = 1.0
    mask: int | None = None
    role: Role = "point"


@dataclass(frozen=True)
class When:
    """A layout applies when ``data[offset] & mask == value`` (a mode bit)."""

    offset: int
    mask: int
    value: int


@dataclass(frozen=True)
class Layout:
    """One uplink format of a device: its fPort, its exact length and its fields."""

    fport: int
    length: int
    fields: tuple[Field, ...]
    when: When | None = None
    info: bool = False
    """A device-status frame (model, firmware, band, battery): no reading in it."""


Check = Callable[[Mapping[str, float]], dict[str, str]]
"""Point → fault cause, from a frame's values (the vendor's documented fault values)."""


def _read(spec: Field, data: bytes) -> float:
    chunk = data[spec.offset : spec.offset + (1 if spec.type == "u8" else 2)]
    if spec.type == "u16le":
        number = int.from_bytes(chunk, "little")
    else:
        number = int.from_bytes(chunk, "big", signed=spec.type == "i16")
    if spec.mask is not None:
        number &= spec.mask
    return number * spec.scale


def _pick(layouts: Sequence[Layout], payload: Payload) -> Layout:
    on_port = [layout for layout in layouts if layout.fport == payload.fport]
    if not on_port:
        ports = sorted({layout.fport for layout in layouts})
        raise CodecError("wrong_fport", f"fPort {payload.fport}, expected {ports}")
    sized = [layout for layout in on_port if layout.length == len(payload.data)]
    if not sized:
        lengths = sorted({layout.length for layout in on_port})
        raise CodecError(
            "payload_length",
            f"{len(payload.data)} bytes on fPort {payload.fport}, expected {lengths}",
        )
    for layout in sized:
        when = layout.when
        if when is None or payload.data[when.offset] & when.mask == when.value:
            return layout
    raise CodecError("unknown_mode", payload.data.hex())  # the table covers every mode


def decode_layout(layouts: Sequence[Layout], check: Check, payload: Payload) -> Decoded:
    """Decode ``payload`` with the one of ``layouts`` that fits it."""
    layout = _pick(layouts, payload)
    values: dict[str, float] = {}
    flags: dict[str, float] = {}
    battery_v = battery_pct = None
    for spec in layout.fields:
        value = _read(spec, payload.data)
        if spec.role == "battery_mv":
            battery_v = round(value / 1000, 3)
        elif spec.role == "battery_pct":
            battery_pct = value
        elif spec.role == "flag":
            flags[spec.name] = value
        else:
            values[spec.name] = round(value, 6)
    faults = {} if layout.info else check({**values, **flags})
    good = {point: value for point, value in values.items() if point not in faults}
    return Decoded(good, faults, battery_v, battery_pct, layout.info)


_DRAGINO_STATUS = Layout(
    fport=5,
    length=7,
    fields=(
        Field("model", 0, "u8", role="flag"),
        Field("firmware", 1, "u16", role="flag"),
        Field("band", 3, "u8", role="flag"),
        Field("sub_band", 4, "u8", role="flag"),
        Field("battery_mv", 5, "u16", role="battery_mv"),
    ),
    info=True,
)
DRAGINO_DISTANCE = (
    Layout(
        fport=2,
        length=8,
        fields=(
            Field("battery_mv", 0, "u16", mask=0x3FFF, role="battery_mv"),
            Field("distance_mm", 2, "u16"),
            Field("interrupt", 4, "u8", role="flag"),
            Field("temperature_c", 5, "i16", scale=0.1),
            Field("sensor_flag", 7, "u8", role="flag"),
        ),
    ),
    _DRAGINO_STATUS,
)
"""LDDS75 / DDS75-LB: distance to the water surface in mm."""
ULTRASONIC_RANGE_MM = (280.0, 7500.0)
"""The LDDS75 / DDS75-LB flat-object range: anything outside it is not a distance."""


def _distance_faults(values: Mapping[str, float]) -> dict[str, str]:
    distance = values["distance_mm"]
    if values["sensor_flag"] == 0 or distance == 0:
        return {"distance_mm": "no_sensor"}  # 0x0000 / sensor flag 0: no ultrasonic probe
    if distance == 20:
        return {"distance_mm": "no_target"}  # 0x0014: the firmware's "invalid reading"
    low, high = ULTRASONIC_RANGE_MM
    if not low <= distance <= high:
        return {"distance_mm": "out_of_range"}
    return {}


_LSE01_FLAGS = Field("flags", 10, "u8", role="flag")
DRAGINO_LSE01 = (
    Layout(
        fport=2,
        length=11,
        fields=(
            Field("battery_mv", 0, "u16", mask=0x3FFF, role="battery_mv"),
            Field("temperature_c", 2, "i16", scale=0.1),
            Field("moisture_pct", 4, "u16", scale=0.01),
            Field("soil_temperature_c", 6, "i16", scale=0.01),
            Field("conductivity_us_cm", 8, "u16"),
            _LSE01_FLAGS,
        ),
        when=When(offset=10, mask=0x80, value=0x00),
    ),
    Layout(  # MOD=1, "original value" mode: dielectric constant and raw counts, no VWC
        fport=2,
        length=11,
        fields=(
            Field("battery_mv", 0, "u16", mask=0x3FFF, role="battery_mv"),
            Field("temperature_c", 2, "i16", scale=0.1),
            Field("dielectric_constant", 4, "u16", scale=0.1),
            Field("raw_moisture", 6, "u16"),
            Field("raw_conductivity", 8, "u16"),
            _LSE01_FLAGS,
        ),
        when=When(offset=10, mask=0x80, value=0x80),
    ),
    _DRAGINO_STATUS,
)
"""LSE01 soil moisture, temperature and conductivity probe."""


def _no_faults(values: Mapping[str, float]) -> dict[str, str]:
    return {}


# --- channel/type TLV (Milesight) ---------------------------------------------------------


@dataclass(frozen=True)
class Channel:
    """One channel/type pair of a TLV payload: its length and what it becomes (``name`` None:
    read past, e.g. device information)."""

    length: int
    name: str | None = None
    type: FieldType = "u8"
    scale: float = 1.0
    role: Role = "point"
    faults: Mapping[int, str] = field(default_factory=dict)
    """Encoded values that are the sensor's fault codes, not measurements."""


MILESIGHT_FPORT = 85
EM500_SWL = {
    (0x01, 0x75): Channel(1, "battery_pct", role="battery_pct"),
    (0x03, 0x77): Channel(
        2,
        "depth_mm",
        "u16le",
        scale=10.0,  # cm on the wire
        faults={0xFFFF: "collection_failed", 0xFFFD: "out_of_range"},
    ),
    (0x20, 0xCE): Channel(6),  # a stored (history) record: timestamp + level, not read here
    (0xFF, 0x01): Channel(1),  # protocol version
    (0xFF, 0x09): Channel(2),  # hardware version
    (0xFF, 0x0A): Channel(2),  # firmware version
    (0xFF, 0x0B): Channel(1),  # power on
    (0xFF, 0x0F): Channel(1),  # LoRaWAN class
    (0xFF, 0x16): Channel(8),  # serial number
    (0xFF, 0x1B): Channel(5),  # measuring equipment
    (0xFF, 0xFE): Channel(1),  # reset event
    (0xFF, 0xFF): Channel(2),  # TSL version
}
"""EM500-SWL submersible level sensor: water depth above the sensor."""


def decode_tlv(channels: Mapping[tuple[int, int], Channel], payload: Payload) -> Decoded:
    """Decode a Milesight channel/type/value payload."""
    if payload.fport != MILESIGHT_FPORT:
        raise CodecError("wrong_fport", f"fPort {payload.fport}, expected [{MILESIGHT_FPORT}]")
    values: dict[str, float] = {}
    faults: dict[str, str] = {}
    battery_pct = None
    for channel, body in _tlv_entries(channels, payload.data):
        if channel.name is None:
            continue
        number = int.from_bytes(body, "little" if channel.type == "u16le" else "big")
        if number in channel.faults:
            faults[channel.name] = channel.faults[number]
        elif channel.role == "battery_pct":
            battery_pct = float(number)
        else:
            values[channel.name] = round(number * channel.scale, 6)
    return Decoded(values, faults, None, battery_pct, info=not values and not faults)


def _tlv_entries(
    channels: Mapping[tuple[int, int], Channel], data: bytes
) -> Iterator[tuple[Channel, bytes]]:
    """Each (channel, value bytes) of a TLV payload, checked: known, whole, not repeated."""
    if not data:
        raise CodecError("payload_length", "no bytes")
    seen: set[tuple[int, int]] = set()
    at = 0
    while at < len(data):
        if at + 2 > len(data):
            raise CodecError("payload_length", f"a channel header cut at byte {at}")
        key = (data[at], data[at + 1])
        channel = channels.get(key)
        if channel is None:
            raise CodecError("unknown_channel", f"channel {key[0]:02x} type {key[1]:02x}")
        if key in seen:
            raise CodecError("repeated_channel", f"channel {key[0]:02x} type {key[1]:02x}")
        seen.add(key)
        body = data[at + 2 : at + 2 + channel.length]
        if len(body) != channel.length:
            raise CodecError("payload_length", f"channel {key[0]:02x} cut short")
        at += 2 + channel.length
        yield channel, body


# --- the network server's decoded object --------------------------------------------------


def object_codec(fields: Mapping[str, str]) -> Codec:
    """A codec reading numbers from the network server's decoded object: ``fields`` maps a
    point to the dotted path of its number (``{"distance_mm": "distance"}``)."""

    def decode(payload: Payload) -> Decoded:
        if payload.obj is None:
            raise CodecError("no_object", "the network server decoded nothing (no codec there)")
        values: dict[str, float] = {}
        faults: dict[str, str] = {}
        for point, path in fields.items():
            found = _at_path(payload.obj, path)
            if isinstance(found, bool) or not isinstance(found, int | float):
                faults[point] = "object_not_a_number" if found is not None else "object_missing"
            elif not math.isfinite(found):
                faults[point] = "object_not_a_number"
            else:
                values[point] = float(found)
        return Decoded(values, faults)

    return Codec("object", frozenset(fields), decode)


def _at_path(obj: Mapping[str, Any], path: str) -> object:
    found: object = obj
    for part in path.split("."):
        if not isinstance(found, Mapping) or part not in found:
            return None
        found = found[part]
    return found


def _layout_codec(name: str, layouts: Sequence[Layout], check: Check) -> Codec:
    points = {spec.name for layout in layouts for spec in layout.fields if spec.role == "point"}
    return Codec(name, frozenset(points), lambda payload: decode_layout(layouts, check, payload))


def _tlv_codec(name: str, channels: Mapping[tuple[int, int], Channel]) -> Codec:
    points = {c.name for c in channels.values() if c.name is not None and c.role == "point"}
    return Codec(name, frozenset(points), lambda payload: decode_tlv(channels, payload))


CODECS: Mapping[str, Codec] = {
    codec.name: codec
    for codec in (
        _layout_codec("dragino_ldds75", DRAGINO_DISTANCE, _distance_faults),
        _layout_codec("dragino_dds75_lb", DRAGINO_DISTANCE, _distance_faults),
        _layout_codec("dragino_lse01", DRAGINO_LSE01, _no_faults),
        _tlv_codec("milesight_em500_swl", EM500_SWL),
    )
}
"""The built-in codecs by name (what a farm file's ``codec`` names)."""


def codec_for(name: str, object_fields: Mapping[str, str]) -> Codec:
    """The codec called ``name`` (``object``: one reading ``object_fields``); raise
    UnknownCodecError if there is none."""
    if name == "object":
        return object_codec(object_fields)
    codec = CODECS.get(name)
    if codec is None:
        known = ", ".join([*sorted(CODECS), "object"])
        raise UnknownCodecError(f"no LoRaWAN codec {name!r}; known: {known}")
    return codec
