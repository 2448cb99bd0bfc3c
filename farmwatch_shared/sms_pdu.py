"""SMS PDUs (3GPP TS 23.040 / 23.038): SMS-SUBMIT encoding for ``AT+CMGS`` in PDU mode and
SMS-DELIVER encoding/decoding for messages read with ``AT+CMGR``/``AT+CMGL``.

Text goes out in the GSM 7-bit default alphabet (with its extension table) when every character
allows it, otherwise in UCS-2; text too long for one SMS is split into parts carrying a
concatenation header (UDH, 8-bit reference).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# The default alphabet, indexed by septet value. ESC (0x1B) is a placeholder here.
GSM7_BASIC: Final = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION: Final = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}
ESCAPE: Final = 0x1B
_BASIC_INDEX: Final = {ch: i for i, ch in enumerate(GSM7_BASIC) if i != ESCAPE}
_EXTENSION_CHAR: Final = {code: ch for ch, code in GSM7_EXTENSION.items()}

DCS_GSM7: Final = 0x00
DCS_8BIT: Final = 0x04
DCS_UCS2: Final = 0x08
SINGLE_GSM7_SEPTETS: Final = 160
PART_GSM7_SEPTETS: Final = 153
SINGLE_UCS2_OCTETS: Final = 140
PART_UCS2_OCTETS: Final = 134
VALIDITY_RELATIVE_4_DAYS: Final = 0xAA


class PduError(ValueError):
    """A PDU that cannot be decoded."""


def gsm7_septets(text: str) -> list[int] | None:
    """The septets for ``text`` in the GSM default alphabet, or None if a character needs UCS-2."""
    septets: list[int] = []
    for ch in text:
        code = _BASIC_INDEX.get(ch)
        if code is not None:
            septets.append(code)
            continue
        ext = GSM7_EXTENSION.get(ch)
        if ext is None:
            return None
        septets.extend((ESCAPE, ext))
    return septets


def pack_septets(septets: list[int], fill_bits: int = 0) -> bytes:
    """Pack 7-bit values LSB first, after ``fill_bits`` zero bits (to align after a UDH)."""
    out = bytearray()
    acc = 0
    nbits = fill_bits
    for septet in septets:
        acc |= (septet & 0x7F) << nbits
        nbits += 7
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8
    if nbits:
        out.append(acc & 0xFF)
    return bytes(out)


def unpack_septets(data: bytes, count: int, fill_bits: int = 0) -> list[int]:
    """Inverse of :func:`pack_septets`: ``count`` septets after ``fill_bits`` bits."""
    value = int.from_bytes(data, "little")
    return [(value >> (fill_bits + 7 * i)) & 0x7F for i in range(count)]


def decode_gsm7(septets: list[int]) -> str:
    """Text for GSM default-alphabet septets (escape sequences resolved)."""
    chars: list[str] = []
    escaped = False
    for septet in septets:
        if escaped:
            chars.append(_EXTENSION_CHAR.get(septet, " "))
            escaped = False
        elif septet == ESCAPE:
            escaped = True
        else:
            chars.append(GSM7_BASIC[septet])
    return "".join(chars)


@dataclass(frozen=True)
class Segment:
    """One SMS worth of user data, before the header is added."""

    dcs: int
    payload: bytes | list[int]
    """Octets (UCS-2) or septets (GSM 7-bit)."""


def split_text(text: str) -> list[Segment]:
    """Choose the encoding and cut ``text`` into as few SMS as possible."""
    septets = gsm7_septets(text)
    if septets is not None:
        if len(septets) <= SINGLE_GSM7_SEPTETS:
            return [Segment(DCS_GSM7, septets)]
        parts: list[Segment] = []
        current: list[int] = []
        i = 0
        while i < len(septets):
            size = 2 if septets[i] == ESCAPE else 1  # an escape pair never straddles parts
            if len(current) + size > PART_GSM7_SEPTETS:
                parts.append(Segment(DCS_GSM7, current))
                current = []
            current.extend(septets[i : i + size])
            i += size
        parts.append(Segment(DCS_GSM7, current))
        return parts
    encoded = text.encode("utf-16-be")
    if len(encoded) <= SINGLE_UCS2_OCTETS:
        return [Segment(DCS_UCS2, encoded)]
    ucs2_parts: list[Segment] = []
    current_b = b""
    for ch in text:  # a surrogate pair (4 octets) stays within one part
        unit = ch.encode("utf-16-be")
        if len(current_b) + len(unit) > PART_UCS2_OCTETS:
            ucs2_parts.append(Segment(DCS_UCS2, current_b))
            current_b = b""
        current_b += unit
    ucs2_parts.append(Segment(DCS_UCS2, current_b))
    return ucs2_parts


def encode_address(number: str) -> bytes:
    """TP address: digit count, type of address, swapped BCD digits (F-padded)."""
    international = number.startswith("+")
    digits = number.lstrip("+")
    if not digits.isdigit() or len(digits) > 20:
        raise ValueError(f"not a phone number: {number!r}")
    padded = digits + ("F" if len(digits) % 2 else "")
    swapped = "".join(padded[i + 1] + padded[i] for i in range(0, len(padded), 2))
    return bytes([len(digits), 0x91 if international else 0x81]) + bytes.fromhex(swapped)


def _user_data(segment: Segment, udh: bytes) -> tuple[int, bytes]:
    """(TP-UDL, TP-UD) for a segment with an optional user data header."""
    if segment.dcs == DCS_GSM7:
        assert isinstance(segment.payload, list)
        if not udh:
            return len(segment.payload), pack_septets(segment.payload)
        header_septets = (len(udh) * 8 + 6) // 7
        fill = header_septets * 7 - len(udh) * 8
        body = pack_septets(segment.payload, fill)
        # the first octet of body holds the fill bits (zero) and the first septet's low bits
        return header_septets + len(segment.payload), udh + body
    assert isinstance(segment.payload, bytes)
    return len(udh) + len(segment.payload), udh + segment.payload


@dataclass(frozen=True)
class SubmitPdu:
    """One SMS-SUBMIT ready for ``AT+CMGS=<tpdu_length>``."""

    hex: str
    """The whole PDU (SMSC part ``00``: use the SIM's SMSC) as upper-case hex."""
    tpdu_length: int
    """Octets after the SMSC part, the number ``AT+CMGS`` expects."""
    dcs: int


def encode_submit(
    number: str, text: str, reference: int = 0, validity: int = VALIDITY_RELATIVE_4_DAYS
) -> list[SubmitPdu]:
    """SMS-SUBMIT PDUs for ``text`` to ``number``; several when the text needs concatenation.

    ``reference`` (0–255) identifies the parts of one concatenated message at the receiver.
    """
    segments = split_text(text)
    total = len(segments)
    pdus = []
    for index, segment in enumerate(segments, start=1):
        udh = b""
        first_octet = 0x11  # SMS-SUBMIT, relative validity period
        if total > 1:
            udh = bytes([5, 0x00, 3, reference & 0xFF, total, index])
            first_octet |= 0x40  # TP-UDHI
        udl, ud = _user_data(segment, udh)
        tpdu = (
            bytes([first_octet, 0x00])
            + encode_address(number)
            + bytes([0x00, segment.dcs, validity, udl])
            + ud
        )
        pdus.append(SubmitPdu(("00" + tpdu.hex()).upper(), len(tpdu), segment.dcs))
    return pdus


@dataclass(frozen=True)
class DeliverPdu:
    """A decoded SMS-DELIVER (a message received by the modem)."""

    sender: str
    text: str
    timestamp: str
    """Service-centre time stamp as ``YYMMDDhhmmss±qq`` (quarter hours)."""
    concat: tuple[int, int, int] | None = None
    """(reference, total, index) when the message is a part of a longer one."""
    numeric_sender: bool = True
    """The originator is a phone number (type of number international, national or unknown,
    digits only); False for an alphanumeric sender ID, which anybody can set to any text."""


TON_ALPHANUMERIC: Final = 5
_NUMERIC_TONS: Final = (0, 1, 2)  # unknown, international, national


def _decode_address(data: bytes, pos: int) -> tuple[str, bool, int]:
    """(address, numeric, position after it) of a TP address at ``pos``."""
    if pos + 2 > len(data):
        raise PduError("address truncated")
    digits = data[pos]
    toa = data[pos + 1]
    octets = (digits + 1) // 2
    raw = data[pos + 2 : pos + 2 + octets]
    if len(raw) != octets:
        raise PduError("address truncated")
    ton = (toa >> 4) & 0x07
    if ton == TON_ALPHANUMERIC:  # e.g. an operator name, or a sender ID posing as a number
        septets = unpack_septets(raw, digits * 4 // 7)
        return decode_gsm7(septets), False, pos + 2 + octets
    text = "".join(f"{b & 0x0F:X}{b >> 4:X}" for b in raw)[:digits]
    numeric = ton in _NUMERIC_TONS and text.isdigit()
    prefix = "+" if ton == 1 else ""
    return prefix + text, numeric, pos + 2 + octets


def decode_deliver(pdu_hex: str) -> DeliverPdu:
    """Decode an SMS-DELIVER PDU as a modem returns it (with its SMSC part).

    Whatever the input (truncated, garbled, a header longer than its data), the only exception
    raised is :class:`PduError`: a received SMS is outside input."""
    try:
        return _decode_deliver(pdu_hex)
    except PduError:
        raise
    except (IndexError, ValueError, KeyError, OverflowError, UnicodeError) as exc:
        raise PduError(f"malformed PDU ({type(exc).__name__}: {exc})") from None


def _decode_deliver(pdu_hex: str) -> DeliverPdu:  # noqa: C901 - the TPDU fields in wire order
    try:
        data = bytes.fromhex(pdu_hex.strip())
    except ValueError as exc:
        raise PduError(f"not hex: {exc}") from None
    if not data:
        raise PduError("empty PDU")
    pos = data[0] + 1  # skip the SMSC information
    if pos >= len(data):
        raise PduError("PDU truncated")
    first = data[pos]
    if first & 0x03 != 0x00:
        raise PduError(f"not an SMS-DELIVER (first octet {first:02X})")
    sender, numeric, pos = _decode_address(data, pos + 1)
    if pos + 10 > len(data):
        raise PduError("PDU truncated")
    dcs = data[pos + 1]
    stamp = data[pos + 2 : pos + 9]
    timestamp = "".join(f"{b & 0x0F}{b >> 4}" for b in stamp)
    udl = data[pos + 9]
    ud = data[pos + 10 :]
    has_udh = bool(first & 0x40)
    header_len = 0
    concat = None
    if has_udh:
        if not ud:
            raise PduError("user data header missing")
        header_len = ud[0] + 1
        if header_len > len(ud):
            raise PduError("user data header truncated")
        concat = _concat_info(ud[1:header_len])
    alphabet = (dcs >> 2) & 0x03 if dcs & 0xC0 == 0x00 else 0
    if alphabet == 0:
        header_septets = (header_len * 8 + 6) // 7
        fill = header_septets * 7 - header_len * 8
        body = ud[header_len:]
        count = udl - header_septets
        if count < 0 or len(body) * 8 < count * 7 + fill:
            raise PduError("user data shorter than its length")
        text = decode_gsm7(unpack_septets(body, count, fill))
    elif alphabet == 2:
        if udl < header_len:
            raise PduError("user data shorter than its header")
        body = ud[header_len:udl]
        text = body.decode("utf-16-be", "replace")
    else:
        if udl < header_len:
            raise PduError("user data shorter than its header")
        text = ud[header_len:udl].decode("latin-1")
    return DeliverPdu(sender, text, timestamp, concat, numeric)


def _concat_info(elements: bytes) -> tuple[int, int, int] | None:
    """(reference, total, index) from the information elements of a UDH, if present."""
    i = 0
    while i + 1 < len(elements):
        iei, length = elements[i], elements[i + 1]
        value = elements[i + 2 : i + 2 + length]
        if len(value) != length:
            raise PduError("information element truncated")
        if iei == 0x00 and length == 3:
            return value[0], value[1], value[2]
        if iei == 0x08 and length == 4:
            return (value[0] << 8) | value[1], value[2], value[3]
        i += 2 + length
    return None


def encode_alphanumeric_address(name: str) -> bytes:
    """TP address of an alphanumeric sender ID (up to 11 GSM characters), as operators and
    bulk senders use: semi-octet count, type of address 0xD0, packed septets."""
    septets = gsm7_septets(name)
    if septets is None or not 0 < len(septets) <= 11:
        raise ValueError(f"not an alphanumeric sender ID: {name!r}")
    return bytes([(len(septets) * 7 + 3) // 4, 0xD0]) + pack_septets(septets)


def encode_deliver(
    sender: str,
    text: str,
    timestamp: str = "26112912000000",
    smsc: str = "+5294000000",
    *,
    alphanumeric: bool = False,
) -> str:
    """An SMS-DELIVER PDU (hex, with SMSC part) as a modem would store a received message;
    ``alphanumeric``: ``sender`` is a sender ID (text), not a number.

    Single part only; used by the modem emulator to hand messages to the code under test.
    """
    smsc_addr = encode_address(smsc)[1:]  # SMSC length counts octets, not digits
    smsc_part = bytes([len(smsc_addr)]) + smsc_addr
    septets = gsm7_septets(text)
    if septets is not None and len(septets) <= SINGLE_GSM7_SEPTETS:
        dcs, udl, ud = DCS_GSM7, len(septets), pack_septets(septets)
    else:
        ud = text.encode("utf-16-be")[:SINGLE_UCS2_OCTETS]
        dcs, udl = DCS_UCS2, len(ud)
    stamp = bytes(int(timestamp[i + 1] + timestamp[i], 16) for i in range(0, 14, 2))
    address = encode_alphanumeric_address(sender) if alphanumeric else encode_address(sender)
    tpdu = bytes([0x04]) + address + bytes([0x00, dcs]) + stamp + bytes([udl]) + ud
    return (smsc_part + tpdu).hex().upper()
