"""Received SMS are outside input: whatever bytes a sender or a modem produces, the decoder
raises only ``PduError`` (finding 2), and an alphanumeric sender ID is never taken for a phone
number (finding 20). Property-based: random hex, and structured truncations and UDH variants
of valid PDUs."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from farmwatch_shared.sms_pdu import PduError, decode_deliver, encode_deliver

TRUNCATED_UDH = "00440D912551513254766800006211291200000003050003"


def test_a_truncated_concatenation_header_is_a_pdu_error() -> None:
    with pytest.raises(PduError):
        decode_deliver(TRUNCATED_UDH)


def test_an_alphanumeric_sender_id_is_not_a_number() -> None:
    posing = decode_deliver(encode_deliver("+5295100001", "OK 1", alphanumeric=True))
    assert (posing.sender, posing.text, posing.numeric_sender) == ("+5295100001", "OK 1", False)
    real = decode_deliver(encode_deliver("+5295100001", "OK 1"))
    assert (real.sender, real.numeric_sender) == ("+5295100001", True)


def _decodes_or_pdu_error(pdu: str) -> None:
    with contextlib.suppress(PduError):  # anything else fails the test
        decode_deliver(pdu)


SENDERS = st.sampled_from(["+529510000001", "+5295100001", "5551234"])
TEXTS = st.text(alphabet="OK 0123456789abcñé¿€[", max_size=40)


@st.composite
def udh_pdus(draw: st.DrawFn) -> str:
    """A valid SMS-DELIVER turned into one with a user data header of random elements, of any
    declared length, cut anywhere."""
    base = bytes.fromhex(encode_deliver(draw(SENDERS), draw(TEXTS)))
    smsc = base[0] + 1
    tpdu = bytearray(base[smsc:])
    tpdu[0] |= 0x40  # TP-UDHI
    address_octets = (tpdu[1] + 1) // 2
    ud_at = 1 + 2 + address_octets + 2 + 7  # first octet, address, PID+DCS, stamp
    concat = st.sampled_from([bytes([0x00, 3]), bytes([0x08, 4])]).map(
        lambda head: head + bytes(range(1, head[1] + 1))
    )
    other = st.builds(
        lambda iei, body, extra: bytes([iei, len(body)]) + body[: len(body) + extra],
        st.sampled_from([0x00, 0x08, 0x24, 0xFF]),
        st.binary(max_size=8),
        st.integers(-3, 0),
    )
    elements = b"".join(draw(st.lists(st.one_of(concat, other), max_size=3)))
    udhl = draw(st.one_of(st.just(len(elements)), st.integers(0, 255)))
    ud = bytes([udhl]) + elements + draw(st.binary(max_size=20))
    udl = draw(st.one_of(st.just(len(ud)), st.integers(0, 255)))
    head = base[:smsc] + bytes(tpdu[:ud_at]) + bytes([udl])
    whole = head + ud
    # cut anywhere, but mostly inside the header: where truncation bites
    cut = draw(
        st.one_of(
            st.integers(0, len(whole)),
            st.integers(len(head), len(head) + 1 + len(elements)),
        )
    )
    return whole[:cut].hex().upper()


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(udh_pdus())
def test_udh_variants_and_truncations_raise_only_pdu_error(pdu: str) -> None:
    _decodes_or_pdu_error(pdu)


@settings(max_examples=400, deadline=None)
@given(SENDERS, TEXTS, st.data())
def test_every_truncation_of_a_valid_pdu_raises_only_pdu_error(
    sender: str, text: str, data: st.DataObject
) -> None:
    alphanumeric = len(sender) <= 11 and data.draw(st.booleans())
    pdu = encode_deliver(sender, text, alphanumeric=alphanumeric)
    cut = data.draw(st.integers(0, len(pdu)))
    _decodes_or_pdu_error(pdu[:cut])
    # and a flipped octet anywhere
    at = data.draw(st.integers(0, max(len(pdu) // 2 - 1, 0)))
    flipped = bytearray(bytes.fromhex(pdu))
    flipped[at] ^= data.draw(st.integers(1, 255))
    _decodes_or_pdu_error(flipped.hex())


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=80), st.text(max_size=10))
def test_random_bytes_and_text_raise_only_pdu_error(raw: bytes, junk: str) -> None:
    _decodes_or_pdu_error(raw.hex())
    _decodes_or_pdu_error(junk)
