"""The farmwatch wheel, installed NON-editable in a fresh virtualenv, works on its own.

What ``deploy/install-*.sh`` do (``pip install <checkout>``), from a copy of the checkout: every
agent of every shipped farm passes ``farmwatch-edge --check-config`` (register maps found as
package data, or beside the farm file), ``farmwatch-collector`` and ``farmwatch-alerts
--check-config`` load the farm directory, ``farmwatch-grafana-push --check-config`` loads the
shipped dashboards without grafana-client, and the emulators and local servers are not in it.
System lane (marker ``system``, ``make test-install``): one build and install per session.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.paths import FARM_FILES, REPO

from farmwatch_local.install import install_checkout
from farmwatch_shared.farm.directory import load_farm_dir

SHIPPED_FARMS = load_farm_dir(FARM_FILES)
AGENTS = [(farm, agent.id) for farm, config in SHIPPED_FARMS.items() for agent in config.agents]


@dataclass(frozen=True)
class Install:
    """The built wheel and the virtualenv it is installed in."""

    wheel: Path
    venv: Path
    home: Path
    """A scratch directory outside the repository: the working directory of every run."""

    def run(self, command: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """``<venv>/bin/<command> args`` with only ``env`` as farmwatch settings."""
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("FARMWATCH_", "PYTHON"))}
        return subprocess.run(
            [str(self.venv / "bin" / command), *args],
            env={**clean, **env},
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,  # the callers read the return code
        )


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Install:
    """Build the wheel (``pip wheel --no-deps``) from a copy of the checkout and install it,
    non-editable, in a fresh virtualenv; pip resolves the dependencies."""
    root = tmp_path_factory.mktemp("install")
    built = install_checkout(REPO, root)
    home = root / "home"
    home.mkdir()
    return Install(built.wheel, built.venv, home)


@pytest.fixture(scope="session")
def farm_dir(installed: Install) -> Path:
    """The shipped farm files copied where the install scripts put them."""
    directory = installed.home / "etc" / "farmwatch" / "farms"
    directory.mkdir(parents=True)
    for path in FARM_FILES.glob("*.toml"):
        shutil.copy(path, directory)
    return directory


def test_the_wheel_ships_its_data_and_no_development_tools(installed: Install) -> None:
    names = zipfile.ZipFile(installed.wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.startswith("farmwatch-")}
    assert top == {"collector", "dashboards", "edge", "farmwatch_shared"}
    for data in (
        "farmwatch_shared/farm/shipped_maps/soil-th-rs485.toml",
        "farmwatch_shared/farm/shipped_maps/level-rs485-hydrostatic.toml",
        "dashboards/generated/farmwatch-water.json",
        "dashboards/generated/farmwatch-soil-rain.json",
        "dashboards/generated/farmwatch-fleet.json",
    ):
        assert data in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    scripts = zipfile.ZipFile(installed.wheel).read(entry_points).decode()
    assert "farmwatch-edge" in scripts
    assert "farmwatch-demo" not in scripts
    assert "farmwatch-emulator" not in scripts
    where = installed.run(
        "python", "-c", "import edge, farmwatch_shared.farm; print(edge.__file__)"
    )
    assert where.returncode == 0, where.stderr
    assert where.stdout.startswith(str(installed.venv))  # the install, not the checkout
    for absent in ("farmwatch_emulators", "farmwatch_local", "grafana_client"):
        assert installed.run("python", "-c", f"import {absent}").returncode == 1, absent


@pytest.mark.parametrize(("farm", "agent"), AGENTS)
def test_edge_check_config_passes_for_every_agent_of_every_shipped_farm(
    installed: Install, farm_dir: Path, farm: str, agent: str
) -> None:
    result = installed.run(
        "farmwatch-edge",
        "--check-config",
        "--agent-id",
        agent,
        FARMWATCH_EDGE_FARM_FILE=str(farm_dir / f"{farm}.toml"),
    )
    assert result.returncode == 0, result.stderr
    buses = len(SHIPPED_FARMS[farm].buses_of(agent))
    assert f"farm {farm}, agent {agent}" in result.stdout
    assert f"{buses} field buses" in result.stdout


def test_collector_and_alerts_check_config_load_the_farm_directory(
    installed: Install, farm_dir: Path
) -> None:
    collector = installed.run(
        "farmwatch-collector",
        "--check-config",
        FARMWATCH_COLLECTOR_FARM_DIR=str(farm_dir),
        FARMWATCH_COLLECTOR_QUARANTINE_PATH=str(installed.home / "quarantine.sqlite3"),
    )
    assert collector.returncode == 0, collector.stderr
    assert f"{len(SHIPPED_FARMS)} farms in {farm_dir}: {', '.join(SHIPPED_FARMS)}" in (
        collector.stdout
    )
    alerts = installed.run(
        "farmwatch-alerts",
        "--check-config",
        FARMWATCH_ALERTS_FARM_DIR=str(farm_dir),
        FARMWATCH_ALERTS_MODEM_PORT="/dev/ttyUSB9",
        FARMWATCH_ALERTS_API_LISTEN="",
    )
    assert alerts.returncode == 0, alerts.stderr
    for farm in SHIPPED_FARMS:
        assert f"  {farm}: " in alerts.stdout
    empty = installed.home / "empty"
    empty.mkdir(exist_ok=True)
    refused = installed.run(
        "farmwatch-collector", "--check-config", FARMWATCH_COLLECTOR_FARM_DIR=str(empty)
    )
    assert refused.returncode == 2
    assert "no farm files" in refused.stderr


def test_water_balance_check_config_lists_every_farms_vessels(
    installed: Install, farm_dir: Path
) -> None:
    result = installed.run(
        "farmwatch-water-balance", "--check-config", FARMWATCH_COLLECTOR_FARM_DIR=str(farm_dir)
    )
    assert result.returncode == 0, result.stderr
    for farm in SHIPPED_FARMS:
        assert f"  {farm}: " in result.stdout
    assert "trough-long (trough, ← tank-steel, 30 head)" in result.stdout


def test_grafana_push_loads_the_shipped_dashboards_without_grafana_client(
    installed: Install,
) -> None:
    result = installed.run(
        "farmwatch-grafana-push", "--check-config", FARMWATCH_GRAFANA_TOKEN="not-used"
    )
    assert result.returncode == 0, result.stderr
    shipped = sorted(p.stem for p in (REPO / "dashboards" / "generated").glob("*.json"))
    assert f"dashboards: {', '.join(shipped)}" in result.stdout


def test_a_register_map_beside_the_installed_farm_file_is_found(installed: Install) -> None:
    directory = installed.home / "own-map" / "farms"
    (directory / "register_maps").mkdir(parents=True)
    text = (FARM_FILES / "chis-frailesca.toml").read_text(encoding="utf-8")
    assert 'register_map = "level-rs485-hydrostatic"' in text
    farm_file = directory / "chis-frailesca.toml"
    farm_file.write_text(text.replace("level-rs485-hydrostatic", "my-level-probe"))
    own_map = directory / "register_maps" / "my-level-probe.toml"
    shutil.copy(
        REPO / "farmwatch_shared" / "farm" / "shipped_maps" / "level-rs485-hydrostatic.toml",
        own_map,
    )
    found = installed.run(
        "farmwatch-edge", "--check-config", FARMWATCH_EDGE_FARM_FILE=str(farm_file)
    )
    assert found.returncode == 0, found.stderr
    own_map.unlink()
    missing = installed.run(
        "farmwatch-edge", "--check-config", FARMWATCH_EDGE_FARM_FILE=str(farm_file)
    )
    assert missing.returncode == 2
    assert "my-level-probe" in missing.stderr
    assert str(directory / "register_maps") in missing.stderr


def server_extras() -> str:
    """The extras ``deploy/install-collector.sh`` installs the checkout with (``[web]``)."""
    script = (REPO / "deploy" / "install-collector.sh").read_text()
    match = re.search(r'/venv/bin/pip" install --quiet "\$\{REPO\}(\[[a-z,]+\])"', script)
    assert match is not None, "install-collector.sh installs the checkout without extras"
    return match.group(1)


def test_farmwatch_web_with_its_extra_checks_its_config(installed: Install, farm_dir: Path) -> None:
    extras = server_extras()  # what the server's install script installs
    assert "web" in extras.strip("[]").split(",")
    names = zipfile.ZipFile(installed.wheel).namelist()
    for data in (
        "collector/web/templates/farm.html",
        "collector/web/templates/base.html",
        "collector/web/static/farmwatch.css",
    ):
        assert data in names
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run(
        [
            *pip,
            "--python",
            str(installed.venv / "bin" / "python"),
            "install",
            "--quiet",
            f"{installed.wheel}{extras}",
        ],
        check=True,
        capture_output=True,
    )
    users = installed.home / "web-users.json"
    added = subprocess.run(
        [
            str(installed.venv / "bin" / "farmwatch-web-user"),
            "--users-file",
            str(users),
            "--farm-dir",
            str(farm_dir),
            "add",
            "ana",
            "--role",
            "operator",
            "--farm",
            "oax-mixteca",
        ],
        input="ana-installed-2026\n",
        capture_output=True,
        text=True,
        cwd=installed.home,
        check=False,
    )
    assert added.returncode == 0, added.stderr
    token = installed.home / "alerts-api-token"
    token.write_text("installed-token-0123456789\n")
    result = installed.run(
        "farmwatch-web",
        "--check-config",
        FARMWATCH_WEB_FARM_DIR=str(farm_dir),
        FARMWATCH_WEB_USERS_FILE=str(users),
        FARMWATCH_WEB_SESSION_DB=str(installed.home / "web-sessions.sqlite3"),
        FARMWATCH_WEB_ALERTS_API_TOKEN_FILE=str(token),
    )
    assert result.returncode == 0, result.stderr
    assert f"{len(SHIPPED_FARMS)} ranchos/farms" in result.stdout
