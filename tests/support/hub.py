"""The hub in the tests: a real loopback NATS JetStream cluster with the hub's definitions
applied, and the real services (``farmwatch-edge``, ``farmwatch-collector``,
``farmwatch-alerts``) as processes on it (``FARMWATCH_*_TRANSPORT=jetstream``)."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from farmwatch_local.nats import NatsCluster
from farmwatch_shared.hub.apply import apply_layout, consumer_info, stream_info
from farmwatch_shared.hub.endpoint import NatsEndpoint
from farmwatch_shared.hub.layout import ADMIN_USER, STREAM, HubLimits
from farmwatch_shared.hub.link import NatsLink
from support.harness import ChildProcess, write_secret
from support.paths import REPO
from support.servers import Influx

TEST_LIMITS = HubLimits(
    max_bytes=256 * 1024**2,
    ack_wait_s=4.0,
    presence_ttl_s=6.0,
    alerts_pinned_ttl_s=6.0,
)
"""Short times, so that a redelivery, an expired presence and a pin's hand-over happen within
a test: a message is delivered again 4 s after a collector took it and died."""


@dataclass
class Hub:
    """A running cluster, its administrator's connection and its users' passwords."""

    cluster: NatsCluster
    admin: NatsLink
    secrets_dir: Path

    def endpoint(self, user: str, name: str) -> NatsEndpoint:
        """How ``user`` reaches the cluster (TLS when the cluster has it)."""
        return NatsEndpoint(
            servers=self.cluster.servers,
            name=name,
            user=user,
            password=SecretStr(self.cluster.passwords[user]),
            tls_ca_file=self.cluster.ca_file,
        )

    def stream_leader(self, stream: str = STREAM) -> str:
        """The node leading ``stream`` now."""
        info = self.admin.submit(stream_info(self.admin.client, stream)).result(10)
        leader: str = info["cluster"]["leader"]
        return leader

    def consumer(self, stream: str, name: str) -> dict[str, Any]:
        """A consumer's info."""
        return self.admin.submit(consumer_info(self.admin.client, stream, name)).result(10)

    def env(self, prefix: str, user: str) -> dict[str, str]:
        """``FARMWATCH_<prefix>_*`` settings that put a service on the hub as ``user``."""
        password = write_secret(self.secrets_dir / f"{user}.password", self.cluster.passwords[user])
        values = {
            f"FARMWATCH_{prefix}_TRANSPORT": "jetstream",
            f"FARMWATCH_{prefix}_NATS_SERVERS": ",".join(self.cluster.servers),
            f"FARMWATCH_{prefix}_NATS_USERNAME": user,
            f"FARMWATCH_{prefix}_NATS_PASSWORD_FILE": str(password),
        }
        if self.cluster.ca_file is not None:
            values[f"FARMWATCH_{prefix}_NATS_TLS_CA_FILE"] = str(self.cluster.ca_file)
        return values


@contextmanager
def running_hub(
    tmp_path: Path,
    farms: list[str],
    *,
    tls: bool = True,
    size: int = 3,
    limits: HubLimits = TEST_LIMITS,
) -> Iterator[Hub]:
    """A cluster of ``size`` nodes with the hub's stream, bucket and consumers applied."""
    cluster = NatsCluster(tmp_path / "hub", farms, size=size, tls=tls)
    cluster.start()
    secrets_dir = tmp_path / "hub-secrets"
    secrets_dir.mkdir()
    admin: NatsLink | None = None
    try:
        admin = NatsLink(
            NatsEndpoint(
                cluster.servers,
                "test-admin",
                ADMIN_USER,
                SecretStr(cluster.passwords[ADMIN_USER]),
                cluster.ca_file,
            )
        )
        admin.start()
        assert admin.wait_connected(20), "the administrator could not connect"
        if size < limits.replicas:
            limits = replace(limits, replicas=1)
        admin.submit(apply_layout(admin.client, limits)).result(30)
        yield Hub(cluster, admin, secrets_dir)
    finally:
        if admin is not None:
            admin.stop()
        cluster.stop()


def _process(module: str, env: dict[str, str], log: Path) -> ChildProcess:
    values = dict(os.environ)
    for key in list(values):
        if key.startswith("FARMWATCH_"):
            del values[key]
    values.update(env)
    values["PYTHONPATH"] = str(REPO) + os.pathsep + values.get("PYTHONPATH", "")
    return ChildProcess([sys.executable, "-m", module], values, log)


def hub_collector(
    hub: Hub, influx: Influx, farm_dir: Path, tmp_path: Path, name: str, **settings: str
) -> ChildProcess:
    """``farmwatch-collector`` on the hub (its own quarantine and log)."""
    env = hub.env("COLLECTOR", "farmwatch-collector") | {
        "FARMWATCH_COLLECTOR_CLIENT_ID": f"collector-{name}",
        "FARMWATCH_COLLECTOR_INFLUX_URL": influx.url,
        "FARMWATCH_COLLECTOR_INFLUX_DATABASE": influx.database,
        "FARMWATCH_COLLECTOR_STATS_INTERVAL_S": "1",
        "FARMWATCH_COLLECTOR_FARM_DIR": str(farm_dir),
        "FARMWATCH_COLLECTOR_QUARANTINE_PATH": str(tmp_path / f"quarantine-{name}.sqlite3"),
    }
    env.update({f"FARMWATCH_COLLECTOR_{k.upper()}": v for k, v in settings.items()})
    return _process("collector.cli", env, tmp_path / f"collector-{name}.log")


def hub_agent(
    hub: Hub, farm_file: Path, serial_path: str, tmp_path: Path, user: str, **settings: str
) -> ChildProcess:
    """``farmwatch-edge`` on the hub as ``user``, reading ``serial_path``."""
    env = hub.env("EDGE", user) | {
        "FARMWATCH_EDGE_FARM_FILE": str(farm_file),
        "FARMWATCH_EDGE_SERIAL_PORT": serial_path,
        "FARMWATCH_EDGE_OUTBOX_PATH": str(tmp_path / "edge-outbox.sqlite3"),
        "FARMWATCH_EDGE_BATCH_MAX_AGE_S": "0.2",
        "FARMWATCH_EDGE_NATS_PRESENCE_INTERVAL_S": "2",
        "FARMWATCH_EDGE_NATS_ACK_TIMEOUT_S": "3",
    }
    env.update({f"FARMWATCH_EDGE_{k.upper()}": v for k, v in settings.items()})
    return _process("edge.cli", env, tmp_path / "edge.log")


def hub_alerts(
    hub: Hub, farm_dir: Path, gateway_url: str, tmp_path: Path, name: str
) -> ChildProcess:
    """``farmwatch-alerts`` on the hub, texting through an HTTP gateway (API off)."""
    token = write_secret(tmp_path / "gateway.token", "gateway-token")
    env = hub.env("ALERTS", "farmwatch-alerts") | {
        "FARMWATCH_ALERTS_CLIENT_ID": f"alerts-{name}",
        "FARMWATCH_ALERTS_FARM_DIR": str(farm_dir),
        "FARMWATCH_ALERTS_STATE_DB": str(tmp_path / f"alerts-{name}.sqlite3"),
        "FARMWATCH_ALERTS_GATEWAY_URL": gateway_url,
        "FARMWATCH_ALERTS_GATEWAY_ACCOUNT_SID": "AC123",
        "FARMWATCH_ALERTS_GATEWAY_AUTH_TOKEN_FILE": str(token),
        "FARMWATCH_ALERTS_GATEWAY_FROM": "+15005550006",
        "FARMWATCH_ALERTS_API_LISTEN": "",
        "FARMWATCH_ALERTS_HUB_PIN_TTL_S": "4",
        "FARMWATCH_ALERTS_HUB_HEARTBEAT_S": "1",
        "FARMWATCH_ALERTS_RETRY_INITIAL_S": "1",
    }
    return _process("collector.alerts.cli", env, tmp_path / f"alerts-{name}.log")


_STATS = re.compile(r"stats: messages=(\d+) points=(\d+)")
_HUB = re.compile(r"hub: delivered=(\d+) redelivered=(\d+)")


def lives(log: str) -> list[str]:
    """A collector's log cut into its runs (each starts with its farms line)."""
    parts = re.split(r"(?=Granjas / farms:)", log)
    return [part for part in parts if "Granjas / farms:" in part]


def collector_counts(log: str) -> tuple[int, int]:
    """Over every run of a collector: points written and messages it got again."""
    points = redelivered = 0
    for life in lives(log):
        stats = _STATS.findall(life)
        hub = _HUB.findall(life)
        points += int(stats[-1][1]) if stats else 0
        redelivered += int(hub[-1][1]) if hub else 0
    return points, redelivered
