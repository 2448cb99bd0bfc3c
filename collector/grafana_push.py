"""``farmwatch-grafana-push``: put the farmwatch folder, datasource and dashboards into an
existing Grafana over its HTTP API (``grafana-client``, optional extra ``farmwatch[grafana]``).

Idempotent: the folder and datasource are created or updated by uid, dashboards overwritten.
The folder is made view-only for Viewers and Editors: the dashboards are code, changed by
regenerating and pushing them, not in the browser. The dashboards pushed are the generated JSON
shipped as package data of ``dashboards`` (``dashboards/generated/``), or ``--dashboards DIR``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Protocol

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from farmwatch_shared.cli import config_error
from farmwatch_shared.settings import read_secret_file

GENERATED: Traversable = resources.files("dashboards") / "generated"
"""The generated dashboards, package data of ``dashboards`` (readable without its SDK extra)."""
DATASOURCE_UID = "farmwatch-influxdb"
"""Must match ``dashboards.influxql.DATASOURCE_UID`` (the panels reference it)."""
VIEW = 1


class FolderApi(Protocol):
    """The folder calls of ``grafana_client.GrafanaApi`` used here."""

    def get_folder(self, uid: str) -> Any:
        """``GET /api/folders/<uid>``; a 404 error if there is none."""

    def create_folder(self, title: str, uid: str | None = None) -> Any:
        """``POST /api/folders``."""

    def update_folder(self, uid: str, title: str | None = None, overwrite: bool = False) -> Any:
        """``PUT /api/folders/<uid>``."""

    def update_folder_permissions(self, uid: str, items: Any) -> Any:
        """``POST /api/folders/<uid>/permissions`` (replaces them all)."""


class DatasourceApi(Protocol):
    """The datasource calls used here."""

    def get_datasource_by_uid(self, datasource_uid: str) -> Any:
        """``GET /api/datasources/uid/<uid>``; a 404 error if there is none."""

    def create_datasource(self, datasource: Any) -> Any:
        """``POST /api/datasources``."""

    def update_datasource_by_uid(self, datasource_uid: str, datasource: Any) -> Any:
        """``PUT /api/datasources/uid/<uid>``."""


class DashboardApi(Protocol):
    """The dashboard call used here."""

    def update_dashboard(self, dashboard: Any) -> Any:
        """``POST /api/dashboards/db`` (creates or, with ``overwrite``, replaces)."""


class GrafanaLike(Protocol):
    """What ``push`` needs of a ``grafana_client.GrafanaApi`` (typed: the library is not)."""

    @property
    def folder(self) -> FolderApi:
        """The folder calls."""

    @property
    def datasource(self) -> DatasourceApi:
        """The datasource calls."""

    @property
    def dashboard(self) -> DashboardApi:
        """The dashboard call."""


class GrafanaPushSettings(BaseSettings):
    """Environment variables ``FARMWATCH_GRAFANA_*``; the token from env or a file."""

    model_config = SettingsConfigDict(env_prefix="FARMWATCH_GRAFANA_", extra="forbid")

    url: str = "http://localhost:3000"
    token: SecretStr | None = None
    """Service-account token with the Editor or Admin role."""
    token_file: Path | None = None
    folder_uid: str = "farmwatch"
    folder_title: str = "farmwatch"
    influx_url: str = "http://localhost:8086"
    """InfluxDB as Grafana's server reaches it (1.x, or 2.x's v1 API with a DBRP mapping)."""
    influx_database: str = "farmwatch"
    influx_username: str | None = None
    influx_password: SecretStr | None = None
    influx_password_file: Path | None = None
    timeout_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _secrets_from_files(self) -> GrafanaPushSettings:
        if self.token_file is not None:
            self.token = read_secret_file(self.token_file)
        if self.influx_password_file is not None:
            self.influx_password = read_secret_file(self.influx_password_file)
        if self.token is None:
            raise ValueError("set FARMWATCH_GRAFANA_TOKEN or FARMWATCH_GRAFANA_TOKEN_FILE")
        return self


def datasource_model(settings: GrafanaPushSettings) -> dict[str, Any]:
    """The InfluxDB datasource in InfluxQL mode (same as deploy/grafana/provisioning)."""
    model: dict[str, Any] = {
        "uid": DATASOURCE_UID,
        "name": "farmwatch InfluxDB",
        "type": "influxdb",
        "access": "proxy",
        "url": settings.influx_url,
        "isDefault": False,
        "jsonData": {
            "version": "InfluxQL",
            "dbName": settings.influx_database,
            "httpMode": "POST",
            "timeInterval": "1m",
        },
    }
    if settings.influx_username is not None:
        model["user"] = settings.influx_username
    if settings.influx_password is not None:
        model["secureJsonData"] = {"password": settings.influx_password.get_secret_value()}
    return model


def load_dashboards(directory: Path | Traversable = GENERATED) -> dict[str, dict[str, Any]]:
    """uid → dashboard JSON of the generated files (``*.json`` of ``directory``)."""
    models: dict[str, dict[str, Any]] = {}
    entries = sorted(directory.iterdir(), key=lambda e: e.name) if directory.is_dir() else []
    for path in (e for e in entries if e.name.endswith(".json")):
        model = json.loads(path.read_text(encoding="utf-8"))
        models[str(model["uid"])] = model
    if not models:
        raise FileNotFoundError(f"no dashboards in {directory}: run python -m dashboards.build")
    return models


@dataclass
class PushReport:
    """What the push did."""

    folder: str = ""
    datasource: str = ""
    dashboards: list[str] = field(default_factory=list)


def _status(exc: Exception) -> int:
    return int(getattr(exc, "status_code", 0) or 0)


def push(
    api: GrafanaLike,
    settings: GrafanaPushSettings,
    dashboards: Mapping[str, Mapping[str, Any]],
) -> PushReport:
    """Create or update the folder, datasource and dashboards."""
    from grafana_client.client import GrafanaClientError

    report = PushReport()
    try:
        api.folder.get_folder(settings.folder_uid)
        api.folder.update_folder(settings.folder_uid, title=settings.folder_title, overwrite=True)
        report.folder = "updated"
    except GrafanaClientError as exc:
        if _status(exc) != 404:
            raise
        api.folder.create_folder(settings.folder_title, uid=settings.folder_uid)
        report.folder = "created"
    api.folder.update_folder_permissions(
        settings.folder_uid,
        {"items": [{"role": "Viewer", "permission": VIEW}, {"role": "Editor", "permission": VIEW}]},
    )
    model = datasource_model(settings)
    try:
        api.datasource.get_datasource_by_uid(DATASOURCE_UID)
        api.datasource.update_datasource_by_uid(DATASOURCE_UID, model)
        report.datasource = "updated"
    except GrafanaClientError as exc:
        if _status(exc) != 404:
            raise
        api.datasource.create_datasource(model)
        report.datasource = "created"
    for uid, dashboard in dashboards.items():
        api.dashboard.update_dashboard(
            {
                "dashboard": {**dashboard, "id": None},
                "folderUid": settings.folder_uid,
                "overwrite": True,
                "message": "farmwatch-grafana-push",
            }
        )
        report.dashboards.append(uid)
    return report


def connect(settings: GrafanaPushSettings) -> GrafanaLike:
    """A Grafana API client with the token."""
    from grafana_client.api import GrafanaApi

    assert settings.token is not None
    api: GrafanaLike = GrafanaApi.from_url(
        settings.url, credential=settings.token.get_secret_value(), timeout=settings.timeout_s
    )
    return api


DESCRIPTION = """\
Publica en Grafana la carpeta, la fuente de datos (InfluxQL) y los tableros de farmwatch.
/ Pushes farmwatch's folder, InfluxQL datasource and dashboards to a running Grafana.

Settings: FARMWATCH_GRAFANA_URL, FARMWATCH_GRAFANA_TOKEN_FILE (service-account token),
FARMWATCH_GRAFANA_INFLUX_URL, FARMWATCH_GRAFANA_INFLUX_DATABASE,
FARMWATCH_GRAFANA_INFLUX_USERNAME, FARMWATCH_GRAFANA_INFLUX_PASSWORD_FILE.
Pushing needs the optional extra (--check-config does not): pip install 'farmwatch[grafana]'.
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(
        prog="farmwatch-grafana-push",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--dashboards",
        type=Path,
        default=GENERATED,
        help="directory of generated JSON (default: the dashboards shipped with farmwatch)",
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate settings and dashboards, print a summary, and exit (0 = valid, 2 = not)",
    )
    args = parser.parse_args(argv)
    try:
        settings = GrafanaPushSettings()
        dashboards = load_dashboards(args.dashboards)
    except (ValidationError, OSError, ValueError) as exc:
        return config_error(exc)
    if args.check_config:
        print(
            f"Configuración válida / configuration valid: Grafana {settings.url} folder "
            f"{settings.folder_uid}, InfluxDB {settings.influx_url} database "
            f"{settings.influx_database}, dashboards: {', '.join(dashboards)}"
        )
        return 0
    try:
        from grafana_client.client import GrafanaException
    except ImportError:
        print("Falta / missing: pip install 'farmwatch[grafana]'", file=sys.stderr)
        return 2
    try:
        report = push(connect(settings), settings, dashboards)
    except GrafanaException as exc:
        status = _status(exc)
        print(
            f"Grafana rechazó la petición / refused the request (HTTP {status}): {str(exc)[:300]}",
            file=sys.stderr,
        )
        return 1
    print(
        f"Listo / done: folder {settings.folder_uid} {report.folder}, datasource "
        f"{DATASOURCE_UID} {report.datasource}, dashboards: {', '.join(report.dashboards)}"
    )
    return 0
