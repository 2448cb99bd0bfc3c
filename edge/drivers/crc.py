"""CRC-16 with the reflected polynomial 0xA001, used by Modbus RTU (initial value 0xFFFF) and
SDI-12 (initial value 0x0000)."""

from __future__ import annotations


def crc16_a001(data: bytes, initial: int) -> int:
    """CRC-16/0xA001 of ``data`` starting from ``initial``."""
    crc = initial
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def modbus_frame_ok(frame: bytes) -> bool:
    """Whether an RTU frame (address … CRC low, CRC high) carries a correct CRC."""
    if len(frame) < 4:
        return False
    return crc16_a001(frame[:-2], 0xFFFF) == int.from_bytes(frame[-2:], "little")
