"""farmwatch as a Pi or the server installs it: the wheel built from a copy of the checkout,
installed non-editable in a fresh virtualenv (what ``deploy/install-*.sh`` do with
``pip install <checkout>``), for the install tests and the edge footprint benchmark."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Installed:
    """The built wheel and the virtualenv it is installed in."""

    wheel: Path
    venv: Path

    def bin(self, command: str) -> Path:
        """A console script (or ``python``) of the install."""
        return self.venv / "bin" / command


def copy_checkout(repo: Path, destination: Path) -> None:
    """The files of the checkout (tracked, and new ones not ignored), like a copy on a Pi:
    no build/, egg-info or virtualenvs that could leak into the wheel."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = repo / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def install_checkout(repo: Path, root: Path) -> Installed:
    """Build the wheel (``pip wheel --no-deps``) from a copy of ``repo`` under ``root`` and
    install it with its dependencies (pip resolves them) in the fresh virtualenv ``root/venv``,
    without the development tools (no extras, no farmwatch-devtools)."""
    source = root / "checkout"
    copy_checkout(repo, source)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--quiet", "-w", str(root / "dist"), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = (root / "dist").glob("farmwatch-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run(
        [*pip, "--python", str(venv / "bin" / "python"), "install", "--quiet", str(wheel)],
        check=True,
        capture_output=True,
    )
    return Installed(wheel, venv)
