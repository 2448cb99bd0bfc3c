"""The import contract (.importlinter, checked by ``make lint``) names every collector module, so
a new module of the collector or of the alerting service cannot slip past it."""

from __future__ import annotations

import configparser
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _contract(name: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser()
    parser.read(REPO / ".importlinter", encoding="utf-8")
    return parser[f"importlinter:contract:{name}"]


def _modules(value: str) -> set[str]:
    return {line.strip() for line in value.splitlines() if line.strip()}


def test_every_collector_module_is_kept_apart_from_the_alerting_service() -> None:
    on_disk = {
        f"collector.{path.stem}"
        for path in (REPO / "collector").glob("*.py")
        if path.stem != "__init__"
    }
    collector = _contract("collector-alone")
    alerts = _contract("alerts-alone")
    assert _modules(collector["source_modules"]) == on_disk
    assert on_disk <= _modules(alerts["forbidden_modules"])
    assert "collector.alerts" in _modules(collector["forbidden_modules"])
    assert _modules(alerts["source_modules"]) == {"collector.alerts"}


def test_the_web_application_is_kept_apart_from_every_other_service() -> None:
    on_disk = {
        f"collector.{path.stem}"
        for path in (REPO / "collector").glob("*.py")
        if path.stem != "__init__"
    }
    web = _contract("web-alone")
    assert _modules(web["source_modules"]) == {"collector.web"}
    assert on_disk | {"edge", "collector.alerts"} <= _modules(web["forbidden_modules"])
    assert "collector.web" in _modules(_contract("collector-alone")["forbidden_modules"])
    assert "collector.web" in _modules(_contract("alerts-alone")["forbidden_modules"])
