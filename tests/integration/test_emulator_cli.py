"""``farmwatch-emulator`` serves a farm's microcontroller on a pty that pyserial can open."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import serial
from support.paths import FARM_FILES, REPO

from farmwatch_shared.mcu_protocol import SYNC_LINE, LineAssembler, McuHello, McuReading, parse_line


def test_the_emulator_speaks_fwl1_on_its_pty(tmp_path: Path) -> None:
    link = tmp_path / "ttyFARM"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "farmwatch_emulators.cli",
            "--farm-file",
            str(FARM_FILES / "oax-mixteca.toml"),
            "--link",
            str(link),
            "--speedup",
            "600",
            "--duration",
            "20",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == f"microcontroller: {link}"
        port = serial.Serial(str(link), 9600, timeout=0.2)
        port.write(SYNC_LINE)
        frames: list[object] = []
        assembler = LineAssembler()
        wired = {"U1", "U2", "S1", "P1"}

        def channels() -> set[str]:
            return {f.channel for f in frames if isinstance(f, McuReading)}

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and channels() != wired:
            for line in assembler.feed(port.read(256)):
                assert isinstance(line, bytes)
                frames.append(parse_line(line))
        port.close()
        assert any(isinstance(f, McuHello) for f in frames)
        assert channels() == wired  # every wired sensor of the farm, nothing else
    finally:
        process.terminate()
        process.wait(10)
    assert process.returncode == 0
