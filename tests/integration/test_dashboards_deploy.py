"""The deployment files agree with the code.

Datasource uid and mode, dashboard paths, the 2.x tasks and DBRP mappings mirror the 1.x
retention set-up, commands exist, no inline secrets. (The compose stack itself is never run
here: no Docker in CI.)"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from collector import grafana_push
from collector.influx_setup import RetentionPlan
from dashboards.influxql import DATASOURCE_UID
from farmwatch_shared.retention import RAW_RP, RP_1D, RP_15M

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def text(relative: str) -> str:
    return (DEPLOY / relative).read_text(encoding="utf-8")


def test_provisioned_datasource_is_the_one_the_panels_use_in_influxql_mode() -> None:
    datasource = text("grafana/provisioning/datasources/farmwatch.yaml")
    assert f"uid: {DATASOURCE_UID}" in datasource
    assert grafana_push.DATASOURCE_UID == DATASOURCE_UID
    assert re.search(r"^\s+version: InfluxQL$", datasource, re.M)
    assert "password: $__file{" in datasource  # the secret comes from a file


def test_dashboard_provider_reads_the_generated_json_mounted_by_compose() -> None:
    provider = text("grafana/provisioning/dashboards/farmwatch.yaml")
    path = re.search(r"path: (\S+)", provider)
    assert path is not None
    assert f"../dashboards/generated:{path.group(1)}:ro" in text("compose.yaml")
    assert "allowUiUpdates: false" in provider


def test_influxdb2_tasks_and_mappings_mirror_the_1x_continuous_queries() -> None:
    setup = text("influxdb2/setup.sh")
    for rp in (RAW_RP, RP_15M, RP_1D):
        assert re.search(rf"ensure_dbrp {rp} ", setup), rp
    cq_fields = set()
    for statement in RetentionPlan().continuous_queries().values():
        cq_fields.update(re.findall(r'AS "(\w+)"', statement))
    for task in ("downsample_15m.flux", "downsample_1d.flux"):
        flux = text(f"influxdb2/tasks/{task}")
        assert set(re.findall(r'field: "(\w+)"', flux)) == cq_fields, task
    assert "offset: 6h" in text("influxdb2/tasks/downsample_1d.flux")


def test_systemd_units_run_installed_commands() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "scripts"
    ]
    for unit in (DEPLOY / "systemd").glob("*.service"):
        for command in re.findall(r"/opt/farmwatch/venv/bin/([\w-]+)", unit.read_text()):
            assert command in scripts, f"{unit.name}: {command}"


def test_no_secret_values_in_deploy_files() -> None:
    suspicious = re.compile(r"(?i)(password|token)\s*[:=]\s*[\"']?(?![$]|/|\$\{)[\w-]{6,}")
    for path in DEPLOY.rglob("*"):
        if path.is_file() and path.suffix in {".yaml", ".sh", ".conf", ".ini", ".example", ""}:
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.lstrip().startswith(("#", ";", "//")):
                    continue
                assert not suspicious.search(line), f"{path}: {line}"
