"""The contract's decoders refuse what a hostile or broken sender can put in a payload: unknown
fields, deep nesting, truncated or padded zlib streams, always as a ``ContractError`` with a
stable cause (issue 11, findings 1 and 23), and never with any other exception (property test)."""

from __future__ import annotations

import json
import zlib

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from farmwatch_shared.contract import (
    AgentStatus,
    Committed,
    ContractError,
    Reading,
    ReadingBatch,
    SensorKind,
    committed_topic,
    decode_message,
    encode_batch,
    encode_committed,
    encode_status,
    readings_topic,
    status_topic,
)
from farmwatch_shared.contract import _decode as _decode  # the one decoding step

T0 = 1_795_000_000_000
FARM, AGENT = "oax-mixteca", "pi-1"
BATCH = ReadingBatch(
    v=1,
    farm=FARM,
    agent=AGENT,
    readings=[Reading(s, "rain", SensorKind.RAIN, T0 + s, 0.2, "mm", 3.0) for s in range(40)],
)
TOPICS = [readings_topic(FARM, AGENT), status_topic(FARM, AGENT), committed_topic(FARM, AGENT)]


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_a_status_with_an_unknown_field_is_refused() -> None:
    payload = b'{"v":1,"farm":"oax-mixteca","agent":"pi-1","state":"online","colour":"red"}'
    with pytest.raises(ContractError) as refused:
        decode_message(status_topic(FARM, AGENT), payload)
    assert refused.value.cause == "schema"


@pytest.mark.parametrize("depth", [1000, 100_000])
@pytest.mark.parametrize("topic", TOPICS)
def test_deep_nesting_anywhere_is_a_contract_error_not_a_recursion_error(
    topic: str, depth: int
) -> None:
    """Finding 1: ~1000 nested ``[`` in an unknown status field raised RecursionError."""
    head = b'{"v":1,"farm":"oax-mixteca","agent":"pi-1","state":"online","x":'
    for payload in (head + nested(depth) + b"}", nested(depth), zlib.compress(nested(depth))):
        with pytest.raises(ContractError) as refused:
            decode_message(topic, payload)
        assert refused.value.cause in {"too_deep", "schema", "malformed"}


def test_nesting_deeper_than_the_decoder_allows_is_too_deep() -> None:
    """Every contract struct forbids unknown fields, so nesting is refused at the first value of
    the wrong type; a decoder that must recurse (any free-form field) still says ``too_deep``."""
    with pytest.raises(ContractError) as refused:
        _decode(msgspec.json.Decoder(), nested(5000))
    assert refused.value.cause == "too_deep"


@pytest.mark.parametrize("cut", [1, 2, 3, 4])
def test_a_zlib_stream_cut_inside_its_checksum_is_refused(cut: int) -> None:
    """Finding 23: a stream missing (part of) its Adler-32 trailer was accepted."""
    stream = encode_batch(BATCH, compress=True)
    with pytest.raises(ContractError) as refused:
        decode_message(readings_topic(FARM, AGENT), stream[:-cut])
    assert refused.value.cause == "bad_compression"


def test_a_zlib_stream_cut_inside_its_data_is_bad_compression_not_malformed() -> None:
    stream = encode_batch(BATCH, compress=True)
    for end in (2, 10, len(stream) // 2, len(stream) - 5):
        with pytest.raises(ContractError) as refused:
            decode_message(readings_topic(FARM, AGENT), stream[:end])
        assert refused.value.cause == "bad_compression", end


def test_bytes_after_a_complete_zlib_stream_are_refused() -> None:
    stream = encode_batch(BATCH, compress=True)
    with pytest.raises(ContractError) as refused:
        decode_message(readings_topic(FARM, AGENT), stream + b"{}")
    assert refused.value.cause == "bad_compression"


def test_a_complete_zlib_stream_still_decodes() -> None:
    assert decode_message(readings_topic(FARM, AGENT), encode_batch(BATCH, compress=True)) == BATCH


VALID = {
    readings_topic(FARM, AGENT): encode_batch(BATCH),
    status_topic(FARM, AGENT): encode_status(
        AgentStatus(v=1, farm=FARM, agent=AGENT, state="online", ts=T0, outbox_backlog=3)
    ),
    committed_topic(FARM, AGENT): encode_committed(
        Committed(v=1, farm=FARM, agent=AGENT, seqs=[(1, 3), (7, 7)])
    ),
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=25,
)


@st.composite
def hostile_payloads(draw: st.DrawFn) -> bytes:
    """Valid payloads taken apart: truncated, padded, nested deep, given unknown or wrong
    fields, compressed or not, and plain random bytes."""
    base = draw(st.sampled_from(sorted(VALID.values())))
    kind = draw(st.integers(min_value=0, max_value=6))
    if kind == 0:
        payload = base[: draw(st.integers(min_value=0, max_value=len(base)))]
    elif kind == 1:
        document = json.loads(base)
        key = draw(st.text(min_size=1, max_size=8))
        depth = draw(st.integers(min_value=1, max_value=3000) | st.sampled_from([999, 1000, 5000]))
        document[key] = "@nested@"
        payload = json.dumps(document).encode().replace(b'"@nested@"', nested(depth))
    elif kind == 2:
        document = json.loads(base)
        field = draw(st.sampled_from(sorted(document)))
        document[field] = draw(json_values)
        payload = json.dumps(document).encode()
    elif kind == 3:
        position = draw(st.integers(min_value=0, max_value=len(base)))
        payload = base[:position] + draw(st.binary(max_size=20)) + base[position:]
    elif kind == 4:
        payload = nested(draw(st.integers(min_value=1, max_value=20_000) | st.just(1000)))
    elif kind == 5:
        payload = draw(st.binary(max_size=300))
    else:
        payload = base
    if draw(st.booleans()):
        stream = zlib.compress(payload)
        cut = draw(st.integers(min_value=0, max_value=8))
        payload = stream[: len(stream) - cut] if draw(st.booleans()) else stream
    return payload


@settings(max_examples=400, deadline=None)
@given(topic=st.sampled_from(TOPICS), payload=hostile_payloads())
def test_any_payload_on_any_topic_decodes_or_raises_a_contract_error(
    topic: str, payload: bytes
) -> None:
    cause = "decoded"
    try:
        decode_message(topic, payload)
    except ContractError as refused:
        cause = refused.cause
    assert cause
