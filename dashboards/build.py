"""``python -m dashboards.build``: regenerate ``dashboards/generated/*.json`` from code and the
farm files (``--check``: exit 1 if the committed JSON differs from what the code generates)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.cog.encoder import JSONEncoder

from dashboards import fleet, soil_rain, water
from dashboards.farms import FARM_FILES, load_farms, sensor_views
from dashboards.influxql import register

GENERATED = Path(__file__).resolve().parent / "generated"
LONG_RANGE = frozenset({soil_rain.UID})
"""Dashboards meant for months or years: every query reads the aggregates."""


def dashboards(farm_files: Path = FARM_FILES) -> dict[str, dict[str, Any]]:
    """uid → dashboard JSON (as Python objects)."""
    register()
    sensors = sensor_views(load_farms(farm_files))
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


def write(directory: Path = GENERATED, farm_files: Path = FARM_FILES) -> list[Path]:
    """Write every dashboard to ``<directory>/<uid>.json``; remove stale ones."""
    directory.mkdir(parents=True, exist_ok=True)
    models = dashboards(farm_files)
    written = []
    for uid, model in models.items():
        path = directory / f"{uid}.json"
        path.write_text(render(model), encoding="utf-8")
        written.append(path)
    for stale in directory.glob("*.json"):
        if stale.stem not in models:
            stale.unlink()
    return written


def differences(directory: Path = GENERATED, farm_files: Path = FARM_FILES) -> list[str]:
    """Names of generated files that are missing, stale or different from the code's output."""
    models = dashboards(farm_files)
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
    parser.add_argument("--farms", type=Path, default=FARM_FILES, help="farm files directory")
    args = parser.parse_args(argv)
    if args.check:
        stale = differences(args.out, args.farms)
        for name in stale:
            print(f"desactualizado / out of date: {name}", file=sys.stderr)
        return 1 if stale else 0
    for path in write(args.out, args.farms):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
