"""Batches sized by encoded bytes: what goes on the wire must fit the broker's packet limit, and
what the collector inflates must fit the contract's ``MAX_PAYLOAD_BYTES``. Pure functions."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

from farmwatch_shared.contract import (
    MAX_PAYLOAD_BYTES,
    Reading,
    ReadingBatch,
    SensorKind,
    encode_batch,
    readings_topic,
)
from farmwatch_shared.contract_v2 import encode_v2_body, wrap_v2_body

PUBLISH_OVERHEAD_BYTES = 16
"""An MQTT v5 PUBLISH besides topic and payload: fixed header with a 4-byte remaining length,
topic length, packet id, empty properties, and some headroom."""
_LONGEST_IDENT = "x" * 32
_LARGEST_READING = Reading(
    seq=sys.maxsize,
    sensor=_LONGEST_IDENT,
    kind=SensorKind.SOIL_MOISTURE,  # the longest kind name
    ts=sys.maxsize,
    value=-sys.float_info.max,
    unit="mm",
    raw=-sys.float_info.max,
    volume_l=-sys.float_info.max,
    flags=sys.maxsize,
)


def largest_reading_bytes() -> int:
    """The most bytes one reading can take in a batch's JSON (its array and a comma)."""
    one = encode_batch(ReadingBatch(v=1, farm="f", agent="a", readings=[_LARGEST_READING]))
    two = encode_batch(ReadingBatch(v=1, farm="f", agent="a", readings=[_LARGEST_READING] * 2))
    return len(two) - len(one)


def envelope_bytes() -> int:
    """The most bytes of a batch's JSON besides its readings (longest farm and agent ids)."""
    batch = ReadingBatch(
        v=1, farm=_LONGEST_IDENT, agent=_LONGEST_IDENT, readings=[_LARGEST_READING]
    )
    return len(encode_batch(batch)) - largest_reading_bytes() + 1


def payload_limit(max_packet_bytes: int) -> int:
    """The largest payload a batch may have on the wire: within the broker's packet size (with
    the longest readings topic) and the contract's limit."""
    topic = readings_topic(_LONGEST_IDENT, _LONGEST_IDENT)
    return min(MAX_PAYLOAD_BYTES, max_packet_bytes - PUBLISH_OVERHEAD_BYTES - len(topic))


def max_uncompressed_readings(max_packet_bytes: int) -> int:
    """How many readings of the largest size an uncompressed batch can always carry."""
    room = min(payload_limit(max_packet_bytes), MAX_PAYLOAD_BYTES) - envelope_bytes()
    return max(0, room // largest_reading_bytes())


@dataclass(frozen=True)
class Encoded:
    """A batch payload ready to publish and how many of the offered readings it carries (the
    first ``count``; the rest go in a later batch)."""

    payload: bytes
    count: int


def encode_fitting(
    farm: str,
    agent: str,
    readings: Sequence[Reading],
    *,
    compress: bool,
    limit: int,
    version: int = 1,
) -> Encoded:
    """The longest prefix of ``readings`` whose batch fits: its body (v1: the JSON; v2: the
    binary body; what the collector inflates) at most ``MAX_PAYLOAD_BYTES`` and its payload on
    the wire at most ``limit``. One reading always goes (the settings guarantee that it fits).
    Contract v2 is always compressed (``compress`` is for v1)."""
    count = len(readings)
    while True:
        batch = ReadingBatch(v=1, farm=farm, agent=agent, readings=list(readings[:count]))
        if version == 2:
            body = encode_v2_body(batch)
            wire = wrap_v2_body(body)
        else:
            body = encode_batch(batch)
            wire = encode_batch(batch, compress=True) if compress else body
        if (len(body) <= MAX_PAYLOAD_BYTES and len(wire) <= limit) or count == 1:
            return Encoded(wire, count)
        ratio = min(MAX_PAYLOAD_BYTES / len(body), limit / len(wire))
        count = max(1, min(count - 1, int(count * ratio * 0.97)))
