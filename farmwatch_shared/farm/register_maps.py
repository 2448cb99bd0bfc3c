"""Register maps of Modbus devices, declared as data (one TOML file per device type).

A farm file names a map (``options.register_map = "<name>"``); ``find_register_map`` looks it up
beside the farm file first (``<farm dir>/register_maps/<name>.toml``: a map of your own, or a
changed copy of a shipped one), then among the maps shipped with farmwatch (package data in
``farmwatch_shared/farm/shipped_maps/``, read through ``importlib.resources``).
"""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

SHIPPED_MAPS: Traversable = resources.files("farmwatch_shared.farm") / "shipped_maps"
"""The register maps shipped with farmwatch (package data)."""
BESIDE_FARM_FILE = "register_maps"
"""Folder next to the farm file searched first: ``<farm dir>/register_maps/<name>.toml``."""
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
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
    """A device type's register map (``register_maps/<name>.toml`` beside the farm file, or a
    shipped one)."""

    device: DeviceInfo
    """Which device type this map describes."""
    fields: dict[str, RegisterField] = Field(min_length=1)
    """The device's values by point name (what a sensor's ``source.point`` names)."""


def load_register_map(path: Path | Traversable) -> RegisterMap:
    """Read and validate one register map file; ValueError with the reason if it is wrong."""
    try:
        return RegisterMap.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ValueError(f"register map {path}: {exc}") from None
    except RecursionError:  # tomllib parses nested arrays and tables recursively
        raise ValueError(f"register map {path}: nested too deeply") from None


def shipped_register_maps() -> list[str]:
    """Names of the register maps shipped with farmwatch, sorted."""
    return sorted(
        entry.name.removesuffix(".toml")
        for entry in SHIPPED_MAPS.iterdir()
        if entry.is_file() and entry.name.endswith(".toml")
    )


def register_map_file(name: str, farm_dir: Path | None) -> Path | Traversable:
    """Where the map ``name`` is: beside the farm file (``farm_dir``, when known) first, then
    among the shipped maps; ValueError naming both places when it is in neither."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"register map {name!r}: not a map name (letters, digits, - and _)")
    filename = f"{name}.toml"
    if farm_dir is not None:
        beside = farm_dir / BESIDE_FARM_FILE / filename
        if beside.is_file():
            return beside
    shipped = SHIPPED_MAPS / filename
    if shipped.is_file():
        return shipped
    where = f"{farm_dir / BESIDE_FARM_FILE}/ nor in " if farm_dir is not None else ""
    raise ValueError(
        f"register map {name!r}: no {filename} in {where}the shipped maps "
        f"({', '.join(shipped_register_maps())})"
    )


def find_register_map(name: str, farm_dir: Path | None) -> RegisterMap:
    """The register map ``name``, looked up as ``register_map_file`` says, read and validated."""
    return load_register_map(register_map_file(name, farm_dir))
