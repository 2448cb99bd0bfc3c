"""Finds a driver module by name: ``edge.drivers.<name>`` exposing ``DRIVER``."""

from __future__ import annotations

import importlib
import re

import edge.drivers
from edge.drivers.base import DriverSpec


class UnknownDriverError(ValueError):
    """The farm file names a driver that does not exist."""


def _load(name: str) -> DriverSpec | None:
    if not re.fullmatch(r"[a-z0-9_]{1,32}", name):
        return None
    try:
        module = importlib.import_module(f"edge.drivers.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"edge.drivers.{name}":
            raise
        return None
    spec = getattr(module, "DRIVER", None)
    return spec if isinstance(spec, DriverSpec) and spec.name == name else None


def driver_spec(name: str) -> DriverSpec:
    """The driver called ``name``; UnknownDriverError if there is none."""
    spec = _load(name)
    if spec is None:
        raise UnknownDriverError(f"no driver {name!r}; known: {', '.join(available_drivers())}")
    return spec


def available_drivers() -> list[str]:
    """Names of the driver modules in ``edge/drivers/`` (modules exposing ``DRIVER``)."""
    import pkgutil  # only for this list (an error message, the docs): not resident on a Pi

    names = (m.name for m in pkgutil.iter_modules(edge.drivers.__path__))
    return sorted(n for n in names if _load(n) is not None)
