"""SMS PDU encoding: published vectors, alphabet choice, concatenation, and a round trip through
the modem emulator's independent decoder."""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st

from farmwatch_emulators.gsm_modem import decode_submit
from farmwatch_shared.sms_pdu import (
    DCS_GSM7,
    DCS_UCS2,
    decode_deliver,
    encode_deliver,
    encode_submit,
    gsm7_septets,
    pack_septets,
)


def test_submit_matches_the_classic_hellohello_vector() -> None:
    # SMS-SUBMIT to +46708251358, "hellohello", relative validity 4 days (0xAA)
    (pdu,) = encode_submit("+46708251358", "hellohello")
    assert pdu.hex == "0011000B916407281553F80000AA0AE8329BFD4697D9EC37"
    assert pdu.tpdu_length == 23  # what AT+CMGS=<n> must announce: octets after the SMSC part


def test_deliver_vector_decodes() -> None:
    # SMS-DELIVER from 27838890001 via SMSC +27381000015, "hellohello"
    pdu = "07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC37"
    sms = decode_deliver(pdu)
    assert (sms.sender, sms.text, sms.timestamp) == ("27838890001", "hellohello", "99032915165908")


def test_septet_packing() -> None:
    assert pack_septets([0x68, 0x65, 0x6C, 0x6C, 0x6F]).hex() == "e8329bfd06"


def test_spanish_text_uses_gsm7_when_possible_and_ucs2_otherwise() -> None:
    assert encode_submit("+529510000001", "¿Señal? Año ñu é ü ¡ya!")[0].dcs == DCS_GSM7
    assert encode_submit("+529510000001", "Quedan 2 días")[0].dcs == DCS_UCS2
    # the extension table costs two septets per character
    assert gsm7_septets("€[]") == [0x1B, 0x65, 0x1B, 0x3C, 0x1B, 0x3E]


def test_long_texts_are_concatenated_with_a_udh_and_fit_the_limits() -> None:
    gsm = encode_submit("+529510000001", "a" * 160)
    assert len(gsm) == 1
    parts = encode_submit("+529510000001", "b" * 161, reference=42)
    assert len(parts) == 2
    decoded = [decode_submit(p.hex) for p in parts]
    assert [d[3] for d in decoded] == [(42, 2, 1), (42, 2, 2)]
    assert "".join(d[1] for d in decoded) == "b" * 161
    assert len(encode_submit("+529510000001", "í" * 70)) == 1
    ucs = encode_submit("+529510000001", "í" * 71)
    assert [len(decode_submit(p.hex)[1]) for p in ucs] == [67, 4]
    # an escape pair is never split between two parts
    tricky = encode_submit("+529510000001", "x" * 152 + "€" + "y" * 7)  # 161 septets
    assert [decode_submit(p.hex)[1] for p in tricky] == ["x" * 152, "€" + "y" * 7]


phone = st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True)


@given(phone, st.text(min_size=0, max_size=400))
def test_any_text_round_trips_through_the_emulator_decoder(number: str, text: str) -> None:
    text = text.replace("\x00", "")  # NUL is '@' in GSM 7-bit: not a round-trippable char
    parts = encode_submit(number, text, reference=7)
    decoded = [decode_submit(p.hex) for p in parts]
    assert all(d[0] == number for d in decoded)
    assert "".join(d[1] for d in decoded) == text
    for pdu in parts:
        assert len(pdu.hex) // 2 - 1 == pdu.tpdu_length
        # first octet, MR, address (length, type, BCD digits), PID, DCS, VP, UDL; then ≤ 140
        header = 8 + (len(number) - 1 + 1) // 2
        assert pdu.tpdu_length - header <= 140


@given(phone, st.text(alphabet=st.characters(codec="utf-8"), max_size=60))
def test_deliver_round_trip(number: str, text: str) -> None:
    text = text.replace("\x00", "")
    assume(len(text.encode("utf-16-be")) <= 140)  # the emulator stores single-part messages
    assert decode_deliver(encode_deliver(number, text)).text == text
