"""``--check-config`` on the hub transport: each service builds what start-up would (the TLS CA
loaded) and says it will use the hub; a missing CA file is a configuration error (exit 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support.paths import FARM_FILES, REPO

from farmwatch_local.nats import make_certificates

SERVERS = "tls://hub1.example.org:4222,tls://hub2.example.org:4222"


def _run(module: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    values = {k: v for k, v in os.environ.items() if not k.startswith("FARMWATCH_")}
    values.update(env)
    values["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", module, "--check-config"],
        env=values,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_agent_collector_and_alerts_check_their_hub_settings(tmp_path: Path) -> None:
    ca = make_certificates(tmp_path / "tls", ["hub1"])
    password = tmp_path / "pw"
    password.write_text("s3cret-password\n")
    hub = {
        "TRANSPORT": "jetstream",
        "NATS_SERVERS": SERVERS,
        "NATS_PASSWORD_FILE": str(password),
        "NATS_TLS_CA_FILE": str(ca),
    }

    def env(prefix: str, user: str, **more: str) -> dict[str, str]:
        values = {f"FARMWATCH_{prefix}_{k}": v for k, v in hub.items()}
        values[f"FARMWATCH_{prefix}_NATS_USERNAME"] = user
        values.update({f"FARMWATCH_{prefix}_{k.upper()}": v for k, v in more.items()})
        return values

    edge = _run(
        "edge.cli",
        env("EDGE", "oax-mixteca", farm_file=str(FARM_FILES / "oax-mixteca.toml")),
    )
    assert edge.returncode == 0, edge.stderr
    assert f"hub (JetStream) {SERVERS.replace(',', ', ')} (TLS)" in edge.stdout
    assert "s3cret" not in edge.stdout + edge.stderr
    collector = _run(
        "collector.cli",
        env(
            "COLLECTOR",
            "farmwatch-collector",
            farm_dir=str(FARM_FILES),
            quarantine_path=str(tmp_path / "q.sqlite3"),
        ),
    )
    assert collector.returncode == 0, collector.stderr
    assert "hub (JetStream) tls://hub1.example.org:4222" in collector.stdout
    alerts = _run(
        "collector.alerts.cli",
        env(
            "ALERTS",
            "farmwatch-alerts",
            farm_dir=str(FARM_FILES),
            state_db=str(tmp_path / "a.sqlite3"),
            modem_port="/dev/ttyUSB2",
            api_listen="",
        ),
    )
    assert alerts.returncode == 0, alerts.stderr
    assert "hub (JetStream, pinned consumer)" in alerts.stdout
    hub["NATS_TLS_CA_FILE"] = str(tmp_path / "missing-ca.crt")
    broken = _run(
        "edge.cli",
        env("EDGE", "oax-mixteca", farm_file=str(FARM_FILES / "oax-mixteca.toml")),
    )
    assert broken.returncode == 2
    assert "missing-ca.crt" in broken.stderr


def test_the_agent_refuses_a_presence_interval_its_bucket_would_age_out() -> None:
    farm = {"FARMWATCH_EDGE_FARM_FILE": str(FARM_FILES / "oax-mixteca.toml")}
    hub = farm | {"FARMWATCH_EDGE_TRANSPORT": "jetstream", "FARMWATCH_EDGE_NATS_SERVERS": SERVERS}
    hourly = {"FARMWATCH_EDGE_NATS_PRESENCE_INTERVAL_S": "3600"}
    refused = _run("edge.cli", hub | hourly)
    assert refused.returncode == 2
    assert "nats_presence_interval_s=3600" in refused.stderr
    assert "presence-ttl-s" in refused.stderr
    longer = _run("edge.cli", hub | hourly | {"FARMWATCH_EDGE_NATS_PRESENCE_TTL_S": "9000"})
    assert longer.returncode == 0, longer.stderr
    assert _run("edge.cli", farm | hourly).returncode == 0  # on MQTT it is not read
