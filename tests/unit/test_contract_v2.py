"""Contract v2 (``farmwatch_shared.contract_v2``): random batches → encode → decode through the
one decode path (``contract.decode_message``) → the identical batch, and v1 and v2 of the same
batch decode to the same readings."""

from __future__ import annotations

import logging
import math
import zlib
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.clocks import SteppingClock

from collector.alerts.intake import MessageIntake
from collector.alerts.store import AlertStore
from collector.checks import check_message
from farmwatch_shared.contract import (
    IDENT_PATTERN,
    MAX_PAYLOAD_BYTES,
    UNITS,
    AgentStatus,
    ContractError,
    Reading,
    ReadingBatch,
    SensorKind,
    decode_batch,
    decode_message,
    encode_batch,
    readings_topic,
)
from farmwatch_shared.contract_v2 import MAGIC, MAGIC_PLAIN, encode_v2, encode_v2_body
from farmwatch_shared.mqtt import Delivery
from farmwatch_shared.problems import ProblemLog

T0 = 1_795_000_000_000

idents = st.from_regex(IDENT_PATTERN, fullmatch=True)
# the values a farm sends (rounded to a few decimals, the scaled-integer path) and any float
scaled = st.builds(
    lambda k, d: k / 10**d, st.integers(-(10**9), 10**9), st.integers(min_value=0, max_value=6)
)
any_float = st.floats(allow_nan=False)
floats = st.one_of(scaled, any_float, st.sampled_from([0.0, -0.0, 5e-324, 1e300, -1.5]))


@st.composite
def batches(draw: st.DrawFn, *, finite: bool = False) -> ReadingBatch:
    """A batch of 1–320 readings with increasing seqs, a few sensors, any timestamps.

    Up to 40 readings are drawn one by one; the batch then repeats them up to 8 times, one
    period later each time (seqs and timestamps shifted), as a farm's steady minutes do. Long
    batches are so as cheap to draw as short ones (the unit lane stays fast), and still carry
    every kind of delta: the drawn ones inside a period, the period's between copies.
    """
    number = st.one_of(scaled, st.floats(allow_nan=False, allow_infinity=not finite))
    sensors = draw(st.lists(idents, min_size=1, max_size=6, unique=True))
    count = draw(st.integers(1, 40))
    seq = draw(st.integers(0, 2**40))
    base_ts = draw(st.integers(0, 2**45))
    steady = draw(st.booleans())
    drawn = []
    for i in range(count):
        kind = draw(st.sampled_from(list(SensorKind)))
        ts = base_ts + i * 60_000 if steady else draw(st.integers(0, 2**50))
        drawn.append(
            Reading(
                seq=seq,
                sensor=draw(st.sampled_from(sensors)),
                kind=kind,
                ts=ts,
                value=draw(number),
                unit=draw(st.one_of(st.just(UNITS[kind]), st.text(max_size=4))),
                raw=draw(number),
                volume_l=draw(st.one_of(st.none(), number)),
                flags=draw(st.one_of(st.just(0), st.integers(0, 2**31))),
            )
        )
        seq += draw(st.integers(1, 1000))
    seq_period = seq - drawn[0].seq
    ts_period = draw(st.integers(0, 2**40))
    readings = [
        msgspec.structs.replace(
            r, seq=r.seq + copy * seq_period, ts=min(r.ts + copy * ts_period, 2**50)
        )
        for copy in range(draw(st.integers(1, 8)))
        for r in drawn
    ]
    return ReadingBatch(v=1, farm=draw(idents), agent=draw(idents), readings=readings)


def same_floats(a: ReadingBatch, b: ReadingBatch) -> bool:
    """Bit-identical floats (``==`` would call -0.0 and 0.0 equal)."""
    for x, y in zip(a.readings, b.readings, strict=True):
        for p, q in ((x.value, y.value), (x.raw, y.raw), (x.volume_l, y.volume_l)):
            if (p is None) != (q is None):
                return False
            if p is not None and q is not None and math.copysign(1, p) != math.copysign(1, q):
                return False
    return True


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_v2_round_trips_any_batch_exactly(batch: ReadingBatch) -> None:
    payload = encode_v2(batch)
    assert payload[0] in (MAGIC, MAGIC_PLAIN)
    decoded = decode_message(readings_topic(batch.farm, batch.agent), payload)
    assert decoded == batch
    assert isinstance(decoded, ReadingBatch)
    assert same_floats(decoded, batch)


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(batches(finite=True))
def test_v1_and_v2_of_a_batch_decode_to_the_same_readings(batch: ReadingBatch) -> None:
    v1 = decode_batch(encode_batch(batch, compress=True))
    v2 = decode_batch(encode_v2(batch))
    assert v1 == v2 == batch
    assert same_floats(v1, v2)


def farm_batch(count: int) -> ReadingBatch:
    """What La Mixteca's agent sends: 4 sensors once a minute, values of 4 and 2 decimals."""
    sensors = [
        ("tank-main", SensorKind.WATER_LEVEL),
        ("trough-north", SensorKind.WATER_LEVEL),
        ("soil-20cm", SensorKind.SOIL_MOISTURE),
        ("rain", SensorKind.RAIN),
    ]
    readings = []
    for i in range(count):
        sensor, kind = sensors[i % 4]
        minute = i // 4
        level = 60 - minute * 0.0137 + (i % 4) * 7
        readings.append(
            Reading(
                seq=10_000 + i,
                sensor=sensor,
                kind=kind,
                ts=1_767_225_600_000 + minute * 60_000 + 40 * (i % 4),
                value=0.0 if kind is SensorKind.RAIN else round(level, 4),
                unit=UNITS[kind],
                raw=float(int(level * 40)),
                volume_l=round(level * 250, 2) if kind is SensorKind.WATER_LEVEL else None,
            )
        )
    return ReadingBatch(v=1, farm="oax-mixteca", agent="pi-1", readings=readings)


def test_v2_is_several_times_denser_than_v1_on_a_farm_batch() -> None:
    batch = farm_batch(120)  # half an hour of La Mixteca
    v1 = len(encode_batch(batch, compress=True))
    v2 = len(encode_v2(batch))
    assert decode_batch(encode_v2(batch)) == batch
    assert v2 * 4 < v1
    assert v2 / 120 < 4.0  # bytes per reading


def test_a_short_batch_goes_uncompressed_when_deflate_would_not_shorten_it() -> None:
    batch = farm_batch(1)
    payload = encode_v2(batch)
    assert payload[0] == MAGIC_PLAIN
    assert payload[1:] == encode_v2_body(batch)
    assert decode_batch(payload) == batch
    assert encode_v2(farm_batch(120))[0] == MAGIC


def test_plain_v2_bodies_are_checked_like_deflated_ones() -> None:
    body = encode_v2_body(farm_batch(8))
    for broken in (body[:-1], body + b"\x00"):
        with pytest.raises(ContractError) as info:
            decode_batch(bytes([MAGIC_PLAIN]) + broken)
        assert info.value.cause == "malformed"


def test_v2_refuses_readings_out_of_seq_order() -> None:
    batch = farm_batch(3)
    shuffled = ReadingBatch(v=1, farm="f", agent="a", readings=batch.readings[::-1])
    with pytest.raises(ValueError, match="increasing seq"):
        encode_v2_body(shuffled)


def deflated(body: bytes) -> bytes:
    """A v2 payload holding ``body`` as it is (even when it is not a valid body)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return bytes([MAGIC]) + compressor.compress(body) + compressor.flush()


@pytest.mark.parametrize(
    ("payload", "cause"),
    [
        (encode_v2(farm_batch(8))[:-3], "bad_compression"),  # cut short
        (encode_v2(farm_batch(8)) + b"\x00", "bad_compression"),  # bytes after the stream
        (deflated(encode_v2_body(farm_batch(8)) + b"\x01"), "malformed"),  # after the batch
        (deflated(encode_v2_body(farm_batch(8))[:-2]), "malformed"),  # truncated body
        (deflated(b"\x03"), "malformed"),  # an unknown body format
        (deflated(b"\x02\x01f\x01a\x00\x00\x00"), "schema"),  # no readings
        (bytes([MAGIC]) + b"\xff" * 10, "bad_compression"),
        (bytes([MAGIC]) + b"\x00" * MAX_PAYLOAD_BYTES, "oversized"),
    ],
)
def test_broken_v2_payloads_are_contract_errors(payload: bytes, cause: str) -> None:
    with pytest.raises(ContractError) as info:
        decode_batch(payload)
    assert info.value.cause == cause


def test_a_v2_farm_id_that_is_not_an_ident_is_refused_by_the_schema() -> None:
    batch = farm_batch(2)
    body = bytearray(encode_v2_body(batch))
    body[2] = ord("O")  # "oax-mixteca" → "Oax-mixteca"
    with pytest.raises(ContractError) as info:
        decode_batch(deflated(bytes(body)))
    assert info.value.cause == "schema"


def test_a_decompression_bomb_is_refused() -> None:
    with pytest.raises(ContractError) as info:
        decode_batch(deflated(b"\x02" + b"\x00" * (MAX_PAYLOAD_BYTES + 10)))
    assert info.value.cause == "oversized"


@settings(max_examples=50, suppress_health_check=[HealthCheck.too_slow])
@given(batches(finite=True))
def test_the_collector_turns_v1_and_v2_into_the_same_points(batch: ReadingBatch) -> None:
    topic = readings_topic(batch.farm, batch.agent)
    now_ms = max(r.ts for r in batch.readings)
    checked = [
        check_message(topic, payload, retained=False, farms={batch.farm}, now_ms=now_ms)
        for payload in (encode_batch(batch, compress=True), encode_v2(batch))
    ]
    assert checked[0] == checked[1]


class RecordingEngine:
    """The alerting engine's intake side: records what it is handed."""

    def __init__(self) -> None:
        self.batches: list[ReadingBatch] = []

    def ingest_batch(self, batch: ReadingBatch) -> bool:
        self.batches.append(batch)
        return True

    def ingest_status(self, status: AgentStatus) -> bool:
        return True


def test_the_alerting_service_takes_v1_and_v2_alike(tmp_path: Path) -> None:
    batch = farm_batch(40)
    engine = RecordingEngine()
    clock = SteppingClock(T0)
    store = AlertStore(tmp_path / "alerts.sqlite3", clock)
    intake = MessageIntake(
        engine, store, {batch.farm}, clock, ProblemLog(logging.getLogger("test.v2"))
    )
    topic = readings_topic(batch.farm, batch.agent)
    try:
        for mid, payload in enumerate((encode_batch(batch, compress=True), encode_v2(batch))):
            assert intake.handle(Delivery(mid, 1, topic, payload)) is None
    finally:
        store.close()
    assert engine.batches == [batch, batch]


def test_the_example_in_the_contract_document_is_what_the_encoder_writes() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "contract.md").read_text("utf-8")
    block = text.split("### Version 2", 1)[1].split("```\n", 2)[1]
    example = bytearray()
    for line in block.splitlines():
        for token in line.split():
            if len(token) != 2 or any(c not in "0123456789abcdef" for c in token):
                break
            example.append(int(token, 16))
    readings = [
        Reading(
            1041, "tank-main", SensorKind.WATER_LEVEL, 1795915688596, 50.0, "%", 1300.0, 12566.37
        ),
        Reading(1042, "soil-20cm", SensorKind.SOIL_MOISTURE, 1795915688611, 25.0008, "%", 2200.0),
        Reading(1043, "rain", SensorKind.RAIN, 1795915688630, 1.0, "mm", 15.0),
        Reading(
            1044, "tank-main", SensorKind.WATER_LEVEL, 1795915748596, 49.9871, "%", 1299.0, 12563.12
        ),
    ]
    batch = ReadingBatch(v=1, farm="oax-mixteca", agent="pi-1", readings=readings)
    assert bytes(example) == encode_v2_body(batch)
    assert len(example) == 109
    assert decode_batch(bytes([MAGIC_PLAIN]) + bytes(example)) == batch
