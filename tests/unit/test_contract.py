"""Decoding a message from its topic and payload (the one place both consumers do it)."""

from __future__ import annotations

import pytest

from farmwatch_shared.contract import (
    AgentStatus,
    Committed,
    ContractError,
    Reading,
    ReadingBatch,
    SensorKind,
    committed_topic,
    decode_committed,
    decode_message,
    encode_batch,
    encode_committed,
    encode_status,
    readings_topic,
    seq_ranges,
    status_topic,
)

T0 = 1_795_000_000_000
BATCH = ReadingBatch(
    v=1,
    farm="oax-mixteca",
    agent="pi-1",
    readings=[Reading(1, "rain", SensorKind.RAIN, T0, 0.2, "mm", 3.0)],
)
STATUS = AgentStatus(v=1, farm="oax-mixteca", agent="pi-1", state="online", ts=T0)


@pytest.mark.parametrize("compress", [False, True])
def test_a_batch_decodes_from_its_topic(compress: bool) -> None:
    topic = readings_topic("oax-mixteca", "pi-1")
    assert decode_message(topic, encode_batch(BATCH, compress=compress)) == BATCH


def test_a_status_decodes_and_a_cleared_retained_status_is_nothing() -> None:
    topic = status_topic("oax-mixteca", "pi-1")
    assert decode_message(topic, encode_status(STATUS)) == STATUS
    assert decode_message(topic, b"") is None


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        (readings_topic("oax-mixteca", "pi-9"), encode_batch(BATCH)),
        (readings_topic("oax-istmo", "pi-1"), encode_batch(BATCH)),
        (status_topic("oax-mixteca", "pi-2"), encode_status(STATUS)),
    ],
)
def test_a_payload_naming_another_farm_or_agent_than_its_topic_is_refused(
    topic: str, payload: bytes
) -> None:
    with pytest.raises(ContractError) as refused:
        decode_message(topic, payload)
    assert refused.value.cause == "topic_mismatch"
    assert "payload oax-mixteca/pi-1" in refused.value.detail


@pytest.mark.parametrize(
    ("topic", "payload", "cause"),
    [
        ("farmwatch/v1/oax-mixteca/pi-1/other", encode_batch(BATCH), "bad_topic"),
        ("farmwatch/v2/oax-mixteca/pi-1/readings", encode_batch(BATCH), "bad_topic"),
        ("farmwatch/v1/oax-mixteca/readings", encode_batch(BATCH), "bad_topic"),
        (readings_topic("oax-mixteca", "pi-1"), b"{not json", "malformed"),
        (readings_topic("oax-mixteca", "pi-1"), b"", "malformed"),
        (readings_topic("oax-mixteca", "pi-1"), encode_status(STATUS), "schema"),
        (status_topic("oax-mixteca", "pi-1"), b"\x78\x9c not zlib", "bad_compression"),
    ],
)
def test_what_does_not_follow_the_contract_raises_with_its_cause(
    topic: str, payload: bytes, cause: str
) -> None:
    with pytest.raises(ContractError) as refused:
        decode_message(topic, payload)
    assert refused.value.cause == cause


def test_committed_confirmations_round_trip_and_merge_seq_ranges() -> None:
    assert seq_ranges([7, 1, 3, 2, 3]) == [(1, 3), (7, 7)]
    assert seq_ranges([]) == []
    committed = Committed(v=1, farm="oax-mixteca", agent="pi-1", seqs=seq_ranges([4, 5, 9]))
    topic = committed_topic("oax-mixteca", "pi-1")
    assert topic == "farmwatch/v1/oax-mixteca/pi-1/committed"
    assert decode_message(topic, encode_committed(committed)) == committed
    assert decode_committed(b'{"v":1,"farm":"oax-mixteca","agent":"pi-1","seqs":[[4,5]]}') == (
        Committed(v=1, farm="oax-mixteca", agent="pi-1", seqs=[(4, 5)])
    )


@pytest.mark.parametrize(
    "payload",
    [
        b'{"v":1,"farm":"oax-mixteca","agent":"pi-1","seqs":[[5,4]]}',
        b'{"v":1,"farm":"oax-mixteca","agent":"pi-1","seqs":[]}',
        b'{"v":1,"farm":"oax-mixteca","agent":"pi-1","seqs":[[-1,4]]}',
        b'{"v":1,"farm":"oax-mixteca","agent":"pi-1","seqs":[[1,4]],"extra":1}',
    ],
)
def test_impossible_confirmations_are_refused(payload: bytes) -> None:
    with pytest.raises(ContractError):
        decode_committed(payload)
    with pytest.raises(ContractError):
        decode_message(committed_topic("oax-mixteca", "pi-1"), payload)


def test_a_confirmation_for_another_agent_on_this_topic_is_refused() -> None:
    other = Committed(v=1, farm="oax-istmo", agent="pi-1", seqs=[(1, 1)])
    with pytest.raises(ContractError, match="topic_mismatch"):
        decode_message(committed_topic("oax-mixteca", "pi-1"), encode_committed(other))
