"""``python -m dashboards.build``: regenerate ``dashboards/generated/*.json`` from code and the
farm files (``--check``: exit 1 if the committed JSON differs from what the code generates).

``--farms`` is the farm directory (default ``/etc/farmwatch/farms``; ``make dashboards`` passes
the repository's ``firmware_configs/``). ``--out`` defaults to this package's ``generated/``
folder: the repository's, in the development (editable) install.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.cog.encoder import JSONEncoder

from dashboards import fleet, soil_rain, water
from dashboards.farms import load_farms, sensor_views
from dashboards.influxql import register
from farmwatch_shared.cli import config_error
from farmwatch_shared.farm.directory import DEFAULT_FARM_DIR
from farmwatch_shared.farm.model import FarmConfigError

GENERATED = Path(__file__).resolve().parent / "generated"
"""Where the JSON is written (and shipped from, as package data)."""
LONG_RANGE = frozenset({soil_rain.UID})
"""Dashboards meant for months or years: every query reads the aggregates."""


def dashboards(farm_dir: Path) -> dict[str, dict[str, Any]]:
    """uid → dashboard JSON (as Python objects) for the farms of ``farm_dir``."""
    register()
    sensors = sensor_views(load_farms(farm_dir))
    boards = [water.build(sensors), soil_rain.build(sensors), fleet.build()]
    result: dict[str, dict[str, Any]] = {}
    for board in boards:
        model = board.build()
        assert model.uid is not None
        for number, panel in enumerate(model.panels or [], start=1):
            panel.id_val = number
        result[model.uid] = json.loads(json.dumps(model, cls=JSONEncoder))
    return result


def render(model: dict[str, Any]) -> str:
    """Stable text of one dashboard (sorted keys, so diffs stay small)."""
    return json.dumps(model, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write(directory: Path, farm_dir: Path) -> list[Path]:
    """Write every dashboard to ``<directory>/<uid>.json``; remove stale ones."""
    directory.mkdir(parents=True, exist_ok=True)
    models = dashboards(farm_dir)
    written = []
    for uid, model in models.items():
        path = directory / f"{uid}.json"
        path.write_text(render(model), encoding="utf-8")
        written.append(path)
    for stale in directory.glob("*.json"):
        if stale.stem not in models:
            stale.unlink()
    return written


def differences(directory: Path, farm_dir: Path) -> list[str]:
    """Names of generated files that are missing, stale or different from the code's output."""
    models = dashboards(farm_dir)
    problems = []
    for uid, model in models.items():
        path = directory / f"{uid}.json"
        if not path.exists() or path.read_text(encoding="utf-8") != render(model):
            problems.append(path.name)
    problems += [p.name for p in directory.glob("*.json") if p.stem not in models]
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m dashboards.build", description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("--out", type=Path, default=GENERATED)
    parser.add_argument(
        "--farms", type=Path, default=DEFAULT_FARM_DIR, help="farm directory (*.toml)"
    )
    args = parser.parse_args(argv)
    try:
        if args.check:
            stale = differences(args.out, args.farms)
            for name in stale:
                print(f"desactualizado / out of date: {name}", file=sys.stderr)
            return 1 if stale else 0
        written = write(args.out, args.farms)
    except FarmConfigError as exc:
        return config_error(exc)
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
