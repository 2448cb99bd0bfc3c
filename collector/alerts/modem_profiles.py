"""Modem profiles as data: what differs between a classic 2G modem and the LTE modules sold in
2026 (SIMCom SIM7600 / SIM7080, Quectel EG25 / BG95), so the AT transport (``modem.py``) has no
vendor branches. Chosen by ``FARMWATCH_ALERTS_MODEM_PROFILE`` (default ``auto``: detected from
``AT+CGMM``). See docs/alerts.md, "Modems".

Sources: SIMCom "SIM7500_SIM7600 Series AT Command Manual" (V1.07/V2.00) and "SIM7070_SIM7080_
SIM7090 Series AT Command Manual" (V1.04); Quectel "EC2x&EG9x&EG2x-G&EM05 Series AT Commands
Manual" (V2.0) and "BG95&BG77 AT Commands Manual" (V1.0); 3GPP TS 27.005 / 27.007.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

AUTO: Literal["auto"] = "auto"


@dataclass(frozen=True)
class ModemProfile:
    """How one family of modems is set up and what it says on its own."""

    name: str
    label: str
    """For operators: which modules this profile is for."""
    models: str
    """Regular expression (case-insensitive, searched) over the ``AT+CGMM`` answer."""
    registration: tuple[str, ...]
    """Registration reports asked in order (``AT+CREG?`` ...) until one says registered; a
    command the modem refuses (``ERROR``) counts as not supported, not as a failure."""
    sms_setup: tuple[str, ...]
    """Commands after registration and before ``AT+CNMI``: PDU mode, message storage."""
    storage: str | None
    """The storage ``sms_setup`` selects for reading, writing and receiving (``"ME"`` module,
    ``"SM"`` SIM); None: left as the modem has it. An announcement in another storage
    (``+CMTI: "SM",0`` while reading ``"ME"``) is read and deleted there."""
    cnmi: str
    """``AT+CNMI`` parameters (``FARMWATCH_ALERTS_MODEM_CNMI`` overrides)."""
    cesq: bool
    """Ask ``AT+CESQ`` (RSRP/RSRQ) besides ``AT+CSQ``; a modem answering ``ERROR`` is not
    asked again until it is initialised again."""
    first_index: int
    """First storage index the vendor documents (1 on SIM800, 0 on the LTE modules): indexes
    are used as the modem gives them, index 0 included."""
    reset_banners: tuple[str, ...]
    """Unsolicited lines meaning the modem restarted (its settings are lost)."""
    info_urcs: tuple[str, ...]
    """Unsolicited boot-progress lines that carry nothing for us (never command answers)."""
    manual: str
    """The AT command manual this profile follows."""

    def matches(self, model: str) -> bool:
        """Whether the ``AT+CGMM`` answer ``model`` is one of this profile's modules."""
        return re.search(self.models, model, re.IGNORECASE) is not None


CLASSIC_2G = ModemProfile(
    name="classic-2g",
    label="2G (GSM/GPRS): SIMCom SIM800/SIM900, Quectel M95/M66",
    models=r"SIM8\d\d|SIM9\d\d|\bM95\b|\bM66\b|\bMC60\b|\bM26\b",
    registration=("CREG", "CGREG"),
    sms_setup=("AT+CMGF=0",),
    storage=None,
    cnmi="2,1,0,0,0",
    cesq=False,
    first_index=1,
    reset_banners=("RDY", "+CFUN:", "+CPIN: NOT READY"),
    info_urcs=("SMS Ready", "Call Ready"),
    manual="SIMCom SIM800 Series AT Command Manual V1.09",
)

SIMCOM_LTE = ModemProfile(
    name="simcom-lte",
    label="SIMCom LTE: SIM7600 (Cat-1/Cat-4), SIM7000/SIM7070/SIM7080 (Cat-M/NB-IoT)",
    models=r"SIM7\d{3}",
    registration=("CREG", "CGREG", "CEREG"),
    sms_setup=("AT+CMGF=0", 'AT+CPMS="ME","ME","ME"'),
    storage="ME",
    cnmi="2,1,0,0,0",
    cesq=True,
    first_index=0,
    reset_banners=("RDY", "+CPIN: NOT READY"),
    info_urcs=("SMS DONE", "PB DONE", "+CFUN:"),
    manual="SIMCom SIM7500_SIM7600 Series AT Command Manual V2.00; SIM7070_SIM7080_SIM7090 "
    "Series AT Command Manual V1.04",
)

QUECTEL_LTE = ModemProfile(
    name="quectel-lte",
    label="Quectel LTE: EG25-G/EC25 (Cat-4), EG91/EG95 (Cat-1), BG95/BG96/BG77 (Cat-M/NB-IoT)",
    models=r"\b(?:EG|EC|EM)\d{2}|\bBG\d{2}",
    registration=("CREG", "CGREG", "CEREG"),
    sms_setup=("AT+CMGF=0", 'AT+CPMS="SM","SM","SM"'),
    storage="SM",
    cnmi="2,1,0,0,0",
    cesq=True,
    first_index=0,
    reset_banners=("RDY", "+CPIN: NOT READY"),
    info_urcs=("+QIND:", "+QUSIM:", "+CFUN:"),
    manual="Quectel EC2x&EG9x&EG2x-G&EM05 Series AT Commands Manual V2.0; BG95&BG77 AT "
    "Commands Manual V1.0",
)

GENERIC_3GPP = ModemProfile(
    name="generic-3gpp",
    label="any other 3GPP TS 27.005/27.007 modem (standard commands only)",
    models=r"(?!)",  # never detected: the fallback of auto-detection
    registration=("CREG", "CGREG", "CEREG"),
    sms_setup=("AT+CMGF=0",),
    storage=None,
    cnmi="2,1,0,0,0",
    cesq=True,
    first_index=0,
    reset_banners=("RDY", "+CPIN: NOT READY"),
    info_urcs=(),
    manual="3GPP TS 27.005, TS 27.007",
)

ProfileChoice = ModemProfile | Literal["auto"]
"""A profile, or ``"auto"``: detected from ``AT+CGMM`` at each initialisation."""

PROFILES: dict[str, ModemProfile] = {
    p.name: p for p in (CLASSIC_2G, SIMCOM_LTE, QUECTEL_LTE, GENERIC_3GPP)
}
"""Every profile by name; ``FARMWATCH_ALERTS_MODEM_PROFILE`` is one of these or ``auto``."""

INFO_URCS = tuple(sorted({u for p in PROFILES.values() for u in p.info_urcs}))
"""Boot-progress lines of any vendor (known before the profile is)."""


def detect_profile(model: str) -> ModemProfile:
    """The profile of the ``AT+CGMM`` answer ``model``; ``generic-3gpp`` if none matches."""
    for profile in (CLASSIC_2G, SIMCOM_LTE, QUECTEL_LTE):
        if profile.matches(model):
            return profile
    return GENERIC_3GPP


def profile_choice(name: str) -> ProfileChoice:
    """The profile named ``name``, or ``"auto"``; ValueError for any other name."""
    if name == AUTO:
        return AUTO
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(
            f"unknown modem profile {name!r}: one of {', '.join([AUTO, *PROFILES])}"
        ) from None
