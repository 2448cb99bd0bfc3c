"""`make demo` as a user runs it: three farms update from InfluxDB, and it stops cleanly."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from support.paths import FARMS, REPO


def test_demo_shows_three_farms_updating_and_stops_everything(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "farmwatch_local.demo",
            "--duration",
            "20",
            "--no-clear",
            "--data-dir",
            str(tmp_path / "demo"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,  # the test reads the return code
    )
    assert result.returncode == 0, result.stderr[-3000:]
    views = result.stdout.split("farmwatch demo — ")
    assert len(views) >= 5, result.stdout[-3000:]
    first, last = views[1], views[-1]
    for farm in FARMS:
        assert re.search(rf"\({farm}\) — agente en línea / online", last), last
    # every sensor shows a value read back from InfluxDB
    assert "—\n" not in last.split("InfluxDB:")[0], last
    assert "InfluxDB: http://127.0.0.1:" in last
    assert "database: farmwatch" in last
    # the farms are updating: simulated time and values move between the first and last view
    assert first.split("InfluxDB:")[0] != last.split("InfluxDB:")[0]
    assert "Listo / done" in result.stdout
    assert "a process exited" not in result.stdout
