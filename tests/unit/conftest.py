"""The unit lane starts no process and opens no pseudo-terminal: a test that tries fails, so
the lane stays fast and a test that needs a server goes to ``integration/``."""

from __future__ import annotations

import os
import subprocess
from typing import NoReturn

import pytest


def _refuse(*args: object, **kwargs: object) -> NoReturn:
    raise AssertionError("a unit test may not start a process or open a pty: see tests/conftest.py")


@pytest.fixture(autouse=True)
def _no_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subprocess.Popen, "_execute_child", _refuse)
    monkeypatch.setattr(os, "openpty", _refuse)
    monkeypatch.setattr(os, "fork", _refuse)
