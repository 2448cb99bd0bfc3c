"""The edge agent's process imports nothing it does not need on a Pi (issue 14: memory)."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
import edge.cli
print(" ".join(sorted(m for m in ("pydantic_settings", "asyncio", "dotenv") if m in sys.modules)))
"""


def test_the_agent_loads_neither_pydantic_settings_nor_asyncio() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == ""
