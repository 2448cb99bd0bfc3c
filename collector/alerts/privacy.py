"""Phone numbers leave the alert store only masked to their last four digits: in InfluxDB (which
every dashboard viewer can read), in log lines and in printed history. The store itself keeps
them whole (it must, to send and to recognise contacts)."""

from __future__ import annotations

import re

_NUMBER = re.compile(r"\+?\d[\d\s().-]{5,}\d")


def mask_phone(phone: str) -> str:
    """``…`` and the last four characters of ``phone`` (a sender ID is masked the same way)."""
    return "…" + phone[-4:]


def redact(text: str) -> str:
    """``text`` with every phone-number-like run of seven or more digits masked (an HTTP
    gateway's error body or an exception message can quote the number)."""
    return _NUMBER.sub(lambda m: mask_phone(re.sub(r"\D", "", m.group(0))), text)
