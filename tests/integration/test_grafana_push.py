"""``farmwatch-grafana-push`` against a local HTTP server standing in for Grafana's API (no real
Grafana runs in CI: it is not packaged in Debian and would need Docker or a 300 MB download).
The server checks every request; then installing ``grafana-client`` (which brings
urllib3-future, taking over the ``urllib3`` module) is shown not to break the InfluxDB writers."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from support.servers import Influx
from support.waiting import wait_for

from collector.grafana_push import DATASOURCE_UID, GENERATED, load_dashboards, main
from farmwatch_local.services import VictoriaMetricsServer, free_port
from farmwatch_shared.influx import InfluxV1Writer, InfluxV2Writer

TOKEN = "glsa_test_token_not_a_real_secret"
INFLUX_PASSWORD = "influx-pw-from-file"


@dataclass
class FakeGrafana:
    """Grafana's HTTP API as far as the push uses it; records and checks each request."""

    folders: set[str] = field(default_factory=set)
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    permissions: dict[str, Any] = field(default_factory=dict)
    reject_with: int | None = None

    def handle(self, method: str, path: str, headers: Any, body: Any) -> tuple[int, Any]:
        self.requests.append((method, path))
        if headers.get("Authorization") != f"Bearer {TOKEN}":
            self.problems.append(f"{method} {path}: bad Authorization header")
            return 401, {"message": "Unauthorized"}
        if self.reject_with is not None:
            return self.reject_with, {"message": "nope"}
        if method != "GET" and headers.get("Content-Type", "").split(";")[0] != "application/json":
            self.problems.append(f"{method} {path}: not JSON")
        parts = path.split("?")[0].strip("/").split("/")
        answer = (
            self._folder(method, parts, body)
            or self._datasource(method, parts, body)
            or self._dashboard(method, parts, body)
        )
        if answer is not None:
            return answer
        self.problems.append(f"unexpected {method} {path}")
        return 404, {"message": "not found"}

    def _folder(self, method: str, parts: list[str], body: Any) -> tuple[int, Any] | None:
        match method, parts:
            case "GET", ["api", "folders", uid]:
                return (200, {"uid": uid}) if uid in self.folders else (404, {"message": "nf"})
            case "POST", ["api", "folders"]:
                self.folders.add(body["uid"])
                return 200, {"uid": body["uid"], "title": body["title"]}
            case "PUT", ["api", "folders", uid]:
                if uid not in self.folders or not body.get("overwrite"):
                    self.problems.append(f"PUT folder {uid}: {body}")
                return 200, {"uid": uid}
            case "POST", ["api", "folders", uid, "permissions"]:
                self.permissions[uid] = body
                return 200, {"message": "Folder permissions updated"}
        return None

    def _datasource(self, method: str, parts: list[str], body: Any) -> tuple[int, Any] | None:
        match method, parts:
            case "GET", ["api", "datasources", "uid", uid]:
                if uid in self.datasources:
                    return 200, self.datasources[uid]
                return 404, {"message": "Data source not found"}
            case "POST", ["api", "datasources"]:
                self.datasources[body["uid"]] = body
                return 200, {"datasource": body, "message": "Datasource added"}
            case "PUT", ["api", "datasources", "uid", uid]:
                self.datasources[uid] = body
                return 200, {"datasource": body}
        return None

    def _dashboard(self, method: str, parts: list[str], body: Any) -> tuple[int, Any] | None:
        if (method, parts) != ("POST", ["api", "dashboards", "db"]):
            return None
        dashboard = body["dashboard"]
        if body.get("overwrite") is not True or dashboard.get("id") is not None:
            self.problems.append(f"dashboard {dashboard.get('uid')}: {body.keys()}")
        if body.get("folderUid") not in self.folders:
            self.problems.append(f"dashboard into unknown folder {body.get('folderUid')}")
        self.dashboards[dashboard["uid"]] = body
        return 200, {"status": "success", "uid": dashboard["uid"]}


@pytest.fixture
def grafana() -> Iterator[tuple[FakeGrafana, str]]:
    fake = FakeGrafana()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            status, answer = fake.handle(self.command, self.path, self.headers, body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _serve  # noqa: N815 (http.server's handler names)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def push_env(
    grafana: tuple[FakeGrafana, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> FakeGrafana:
    fake, url = grafana
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    password_file = tmp_path / "influx-password"
    password_file.write_text(INFLUX_PASSWORD + "\n")
    monkeypatch.setenv("FARMWATCH_GRAFANA_URL", url)
    monkeypatch.setenv("FARMWATCH_GRAFANA_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("FARMWATCH_GRAFANA_INFLUX_URL", "http://influxdb:18086")
    monkeypatch.setenv("FARMWATCH_GRAFANA_INFLUX_DATABASE", "farmwatch")
    monkeypatch.setenv("FARMWATCH_GRAFANA_INFLUX_USERNAME", "grafana")
    monkeypatch.setenv("FARMWATCH_GRAFANA_INFLUX_PASSWORD_FILE", str(password_file))
    return fake


def test_push_creates_folder_datasource_and_dashboards(
    push_env: FakeGrafana, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = push_env
    assert main([]) == 0
    assert fake.problems == []
    assert fake.folders == {"farmwatch"}
    # viewers and editors may only view: dashboards change through code
    assert fake.permissions["farmwatch"] == {
        "items": [{"role": "Viewer", "permission": 1}, {"role": "Editor", "permission": 1}]
    }
    datasource = fake.datasources[DATASOURCE_UID]
    assert datasource["type"] == "influxdb"
    assert datasource["access"] == "proxy"
    assert datasource["url"] == "http://influxdb:18086"
    assert datasource["jsonData"]["version"] == "InfluxQL"  # not Flux
    assert datasource["jsonData"]["dbName"] == "farmwatch"
    assert datasource["user"] == "grafana"
    assert datasource["secureJsonData"] == {"password": INFLUX_PASSWORD}
    generated = load_dashboards(GENERATED)
    assert set(fake.dashboards) == set(generated)
    for uid, body in fake.dashboards.items():
        assert body["folderUid"] == "farmwatch"
        assert {**body["dashboard"], "id": None} == {**generated[uid], "id": None}
    out = capsys.readouterr()
    assert TOKEN not in out.out + out.err
    assert INFLUX_PASSWORD not in out.out + out.err
    assert "created" in out.out


def test_second_push_updates_in_place(push_env: FakeGrafana) -> None:
    fake = push_env
    assert main([]) == 0
    fake.requests.clear()
    assert main([]) == 0
    assert fake.problems == []
    methods = set(fake.requests)
    assert ("PUT", f"/api/datasources/uid/{DATASOURCE_UID}") in methods
    assert ("PUT", "/api/folders/farmwatch") in methods
    assert ("POST", "/api/datasources") not in methods
    assert ("POST", "/api/folders") not in methods


def test_refused_request_is_reported_without_secrets(
    push_env: FakeGrafana, capsys: pytest.CaptureFixture[str]
) -> None:
    push_env.reject_with = 403
    assert main([]) == 1
    err = capsys.readouterr().err
    assert "403" in err
    assert TOKEN not in err


def test_missing_token_is_a_configuration_error(
    grafana: tuple[FakeGrafana, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, url = grafana
    monkeypatch.setenv("FARMWATCH_GRAFANA_URL", url)
    monkeypatch.delenv("FARMWATCH_GRAFANA_TOKEN", raising=False)
    assert main([]) == 2
    assert fake.requests == []


def test_influxdb_writers_still_work_with_grafana_client_installed(
    victoria: VictoriaMetricsServer, influx: Influx
) -> None:
    import grafana_client
    from urllib3._version import __version__ as flavour  # in urllib3 and urllib3-future

    assert grafana_client.GrafanaApi is not None
    # urllib3-future has replaced the urllib3 module; the collector's writers must not notice
    now = int(time.time() * 1000)
    writer = InfluxV2Writer(victoria.url, SecretStr("unused"), org="farmwatch", bucket="farmwatch")
    try:
        writer.write([f"water_level,farm=oax-mixteca,sensor=tank-main,unit=% value=42.5 {now}"])
    finally:
        writer.close()

    def exported() -> list[dict[str, Any]]:
        urllib.request.urlopen(f"{victoria.url}/internal/force_flush", timeout=10).read()
        query = urllib.parse.urlencode({"match[]": '{__name__="water_level_value"}'})
        with urllib.request.urlopen(f"{victoria.url}/api/v1/export?{query}", timeout=10) as r:
            return [json.loads(line) for line in r.read().decode().splitlines() if line]

    (series,) = wait_for(exported, what=f"point in VictoriaMetrics (urllib3 {flavour})")
    assert series["values"] == [42.5]
    assert series["timestamps"] == [now]
    assert series["metric"]["farm"] == "oax-mixteca"

    v1 = InfluxV1Writer(influx.url, influx.database)
    v1.ensure_database()
    v1.write([f"rain,farm=oax-istmo,sensor=rain,unit=mm value=0.2 {now}"])
    assert influx.query('SELECT "value" FROM "rain"')[0]["value"] == 0.2
