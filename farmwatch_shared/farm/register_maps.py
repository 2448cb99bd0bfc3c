"""Register maps of Modbus devices, declared as data (one TOML file per device type)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAP_DIR = Path(__file__).resolve().parents[2] / "firmware_configs" / "register_maps"
_WIDTH = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RegisterField(_Frozen):
    """One value in a device's register map."""

    address: int = Field(ge=0, le=0xFFFF)
    """First register (0-based, as sent on the wire)."""
    function: Literal[3, 4] = 3
    """3 = holding registers, 4 = input registers."""
    type: Literal["int16", "uint16", "int32", "uint32", "float32"]
    """How the register(s) are decoded; 32-bit types span two registers."""
    word_order: Literal["big", "little"] = "big"
    """For 32-bit types: "big" = high word first (ABCD), "little" = low word first (CDAB)."""
    scale: float = 1.0
    """value = decoded × ``scale`` + ``offset``."""
    offset: float = 0.0
    """Added after scaling."""
    unit: str = ""
    """Unit of the scaled value, for people (scale it to what the sensor's calibration
    expects: mm for distance, kPa for pressure, % for moisture)."""

    @property
    def width(self) -> int:
        """Registers this field spans."""
        return _WIDTH[self.type]


class DeviceInfo(_Frozen):
    """Who made the device (shown in logs)."""

    name: str
    """Device type and vendor, e.g. "Sonda de suelo RS-485 / RS-485 soil probe"."""


class RegisterMap(_Frozen):
    """A device type's register map (``firmware_configs/register_maps/<name>.toml``)."""

    device: DeviceInfo
    """Which device type this map describes."""
    fields: dict[str, RegisterField] = Field(min_length=1)
    """The device's values by point name (what a sensor's ``source.point`` names)."""


def load_register_map(path: Path) -> RegisterMap:
    """Read and validate one register map file; ValueError with the reason if it is wrong."""
    try:
        return RegisterMap.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except (OSError, tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ValueError(f"register map {path}: {exc}") from None
