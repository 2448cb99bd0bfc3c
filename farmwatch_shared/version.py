"""The installed farmwatch release, as ``pyproject.toml`` declares it (one place)."""

from __future__ import annotations

from importlib.metadata import version
from typing import Final

VERSION: Final = version("farmwatch")
"""E.g. "0.1.0"; reported in the agent's status."""
