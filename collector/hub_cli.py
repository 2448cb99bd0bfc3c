"""``farmwatch-hub``: the hub's definitions as code (docs/scale-out.md).

- ``config``: every node's ``nats-server`` configuration from a plan (``deploy/nats/hub.toml``)
  and the farm directory: listeners, JetStream, routes, TLS, and the account with one user per
  farm (allowed only its own subjects) and per service. Each user's password is created once
  in the secrets directory (``<user>.password``, 0600: hand a farm's to its agent) and kept
  there with its bcrypt hash, so running it again writes the same files.
- ``apply``: create or update the stream, the presence bucket and the consumers on a running
  cluster, as the administrator user; what already matches is left alone.
- ``status``: the stream's leader and replicas, each consumer's backlog, and each agent's
  presence (online, last seen, outbox backlog).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import secrets
import sys
import tomllib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import nats
import nats.errors
from nats.aio.client import Client
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from farmwatch_shared.contract import ContractError, decode_status
from farmwatch_shared.farm.directory import DEFAULT_FARM_DIR, load_farm_dir
from farmwatch_shared.farm.model import FarmConfigError
from farmwatch_shared.hub.apply import HubApiError, apply_layout, consumer_info, stream_info
from farmwatch_shared.hub.endpoint import NatsEndpoint
from farmwatch_shared.hub.layout import (
    ADMIN_USER,
    ALERTS_USER,
    COLLECTOR_USER,
    PRESENCE_STREAM,
    STREAM,
    HubLimits,
    consumer_configs,
)
from farmwatch_shared.hub.server_config import ClusterPlan, HubNode, HubUser, NodeTls, node_config
from farmwatch_shared.hub.settings import HubSettings
from farmwatch_shared.settings import read_secret_file

BCRYPT_ROUNDS = 11
NO_PLACEMENT = 10005


class PlanNode(BaseModel):
    """A node of the plan file."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    host: str
    client_port: int = Field(default=4222, ge=1, le=65535)
    cluster_port: int = Field(default=6222, ge=1, le=65535)
    monitor_port: int | None = Field(default=8222, ge=1, le=65535)


class PlanFile(BaseModel):
    """``deploy/nats/hub.toml``: the cluster's name, nodes, storage and TLS."""

    model_config = ConfigDict(extra="forbid")
    cluster: str = "farmwatch"
    store_dir: Path = Path("/var/lib/nats")
    tls_dir: Path | None = None
    """Holds ``ca.crt`` and ``<node>.crt``/``<node>.key`` (deploy/nats/make-tls-certs.sh)."""
    sync_interval: str = "default"
    max_file_store_gb: int = Field(default=64, ge=1)
    listen_all: bool = True
    client_ping_interval_s: int = Field(default=ClusterPlan.client_ping_interval_s, ge=1)
    """How long a client may be quiet before its node pings it (agents on paid links)."""
    nodes: list[PlanNode]

    def plan(self) -> ClusterPlan:
        """The cluster plan the node configurations are written from."""
        return ClusterPlan(
            name=self.cluster,
            nodes=tuple(
                HubNode(n.name, n.host, n.client_port, n.cluster_port, n.monitor_port)
                for n in self.nodes
            ),
            sync_interval=self.sync_interval,
            max_file_store=self.max_file_store_gb * 1024**3,
            listen_all=self.listen_all,
            client_ping_interval_s=self.client_ping_interval_s,
        )


def _hash(password: str) -> str:
    import bcrypt  # the hub-admin extra: needed by `config` only

    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_ROUNDS)).decode()


def _matches(password: str, hashed: str) -> bool:
    import bcrypt  # as above

    return bcrypt.checkpw(password.encode(), hashed.encode())


def hub_user(secrets_dir: Path, name: str) -> tuple[HubUser, bool]:
    """User ``name`` with its password (created if missing) and its kept bcrypt hash (made
    again only when it no longer matches); whether the password is new."""
    password_file = secrets_dir / f"{name}.password"
    hash_file = secrets_dir / f"{name}.bcrypt"
    created = not password_file.exists()
    if created:
        password_file.touch(mode=0o600)
        password_file.write_text(secrets.token_urlsafe(24) + "\n")
    password = read_secret_file(password_file).get_secret_value()
    hashed = hash_file.read_text().strip() if hash_file.exists() else ""
    if not hashed or not _matches(password, hashed):
        hashed = _hash(password)
        hash_file.touch(mode=0o600)
        hash_file.write_text(hashed + "\n")
    return HubUser(name, hashed), created


def write_configs(
    plan_file: PlanFile, farms: Sequence[str], secrets_dir: Path, out_dir: Path
) -> list[str]:
    """Every node's configuration file; the names of users whose password was created."""
    secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    created = []
    users = []
    for name in (ADMIN_USER, COLLECTOR_USER, ALERTS_USER, *farms):
        user, new = hub_user(secrets_dir, name)
        users.append(user)
        if new:
            created.append(name)
    plan = plan_file.plan()
    for node in plan.nodes:
        tls = None
        if plan_file.tls_dir is not None:
            d = plan_file.tls_dir
            tls = NodeTls(d / f"{node.name}.crt", d / f"{node.name}.key", d / "ca.crt")
        text = node_config(
            plan, node.name, store_dir=plan_file.store_dir / node.name, users=users, tls=tls
        )
        path = out_dir / f"{node.name}.conf"
        if not path.exists() or path.read_text() != text:
            path.touch(mode=0o640)
            path.write_text(text)
    return created


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="farmwatch-hub",
        description="El hub de farmwatch en NATS JetStream / farmwatch's hub on NATS "
        "JetStream: node configurations, stream and consumers, status (docs/scale-out.md).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    config = sub.add_parser("config", help="write every node's nats-server configuration")
    config.add_argument("--plan", type=Path, required=True, help="plan file (deploy/nats/hub.toml)")
    config.add_argument("--farm-dir", type=Path, default=DEFAULT_FARM_DIR)
    config.add_argument("--secrets-dir", type=Path, required=True, help="users' passwords")
    config.add_argument("--out-dir", type=Path, required=True, help="where <node>.conf go")
    for name, text in (("apply", "create or update stream and consumers"), ("status", "show")):
        command = sub.add_parser(name, help=text)
        command.add_argument("--servers", required=True, help="tls://hub1:4222,tls://hub2:4222…")
        command.add_argument("--user", default=ADMIN_USER)
        command.add_argument("--password-file", type=Path, required=True)
        command.add_argument("--ca-file", type=Path, help="the hub's CA (tls:// URLs)")
    apply = sub.choices["apply"]
    defaults = HubLimits()
    apply.add_argument("--replicas", type=int, default=defaults.replicas)
    apply.add_argument("--max-bytes", type=int, default=defaults.max_bytes)
    apply.add_argument("--duplicate-window-s", type=float, default=defaults.duplicate_window_s)
    apply.add_argument("--presence-ttl-s", type=float, default=defaults.presence_ttl_s)
    apply.add_argument("--ack-wait-s", type=float, default=defaults.ack_wait_s)
    apply.add_argument("--max-ack-pending", type=int, default=defaults.max_ack_pending)
    apply.add_argument("--alerts-pinned-ttl-s", type=float, default=defaults.alerts_pinned_ttl_s)
    return parser


def _limits(args: argparse.Namespace) -> HubLimits:
    return HubLimits(
        replicas=args.replicas,
        max_bytes=args.max_bytes,
        duplicate_window_s=args.duplicate_window_s,
        presence_ttl_s=args.presence_ttl_s,
        ack_wait_s=args.ack_wait_s,
        max_ack_pending=args.max_ack_pending,
        alerts_pinned_ttl_s=args.alerts_pinned_ttl_s,
    )


def _endpoint(args: argparse.Namespace) -> NatsEndpoint:
    return NatsEndpoint(
        servers=tuple(url.strip() for url in args.servers.split(",") if url.strip()),
        name="farmwatch-hub",
        user=args.user,
        password=read_secret_file(args.password_file),
        tls_ca_file=args.ca_file,
    )


async def _connect(endpoint: NatsEndpoint) -> Client:
    password = endpoint.password.get_secret_value() if endpoint.password else None
    return await nats.connect(
        servers=list(endpoint.servers),
        user=endpoint.user,
        password=password,
        tls=endpoint.tls_context(),
        inbox_prefix=endpoint.inbox_prefix,
        name=endpoint.name,
        connect_timeout=5,
        max_reconnect_attempts=2,
    )


AGENT_PRESENCE_INTERVAL_S: float = HubSettings.model_fields["nats_presence_interval_s"].default
"""How often an agent with the default settings puts its presence."""


def presence_ttl_warning(
    limits: HubLimits, presence_interval_s: float = AGENT_PRESENCE_INTERVAL_S
) -> str | None:
    """A warning when the presence TTL leaves no room for one put that does not arrive: agents
    putting every ``presence_interval_s`` would then read as offline after a single lost put
    (or between two puts, below the interval itself). None when there is room."""
    if limits.presence_ttl_s >= 2 * presence_interval_s:
        return None
    return (
        f"Aviso: --presence-ttl-s {limits.presence_ttl_s:g} es menor que dos veces el intervalo "
        f"de presencia de los agentes ({presence_interval_s:g} s): un agente vivo se verá "
        f"desconectado; baje FARMWATCH_EDGE_NATS_PRESENCE_INTERVAL_S en cada agente. / "
        f"Warning: --presence-ttl-s {limits.presence_ttl_s:g} is below twice the agents' "
        f"presence interval ({presence_interval_s:g} s): a live agent will read as offline; "
        f"lower FARMWATCH_EDGE_NATS_PRESENCE_INTERVAL_S on every agent."
    )


async def _apply(endpoint: NatsEndpoint, limits: HubLimits) -> int:
    warning = presence_ttl_warning(limits)
    if warning is not None:
        print(warning, file=sys.stderr)
    client = await _connect(endpoint)
    try:
        changes = await apply_layout(client, limits)
    finally:
        await client.close()
    for change in changes:
        print(f"{change.kind} {change.name}: {change.action}")
    return 0


def _when(ts_ms: int | None) -> str:
    if ts_ms is None:
        return "-"
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


async def _presence(client: Client) -> list[str]:
    info = await client.request(
        f"$JS.API.STREAM.INFO.{PRESENCE_STREAM}",
        json.dumps({"subjects_filter": ">"}).encode(),
        timeout=5,
    )
    subjects = sorted(json.loads(info.data).get("state", {}).get("subjects", {}) or {})
    lines = []
    for subject in subjects:
        reply = await client.request(
            f"$JS.API.STREAM.MSG.GET.{PRESENCE_STREAM}",
            json.dumps({"last_by_subj": subject}).encode(),
            timeout=5,
        )
        message = json.loads(reply.data).get("message", {})
        key = subject.split(".", 2)[2]
        try:
            status = decode_status(base64.b64decode(message.get("data", "")))
        except ContractError:
            lines.append(f"  {key}: fuera de línea / offline (expired)")
            continue
        lines.append(
            f"  {key}: {'en línea / online' if status.state == 'online' else 'offline'}, "
            f"last seen {_when(status.ts)} UTC, outbox backlog {status.outbox_backlog}"
        )
    return lines


async def _status(endpoint: NatsEndpoint) -> int:
    client = await _connect(endpoint)
    try:
        stream = await stream_info(client, STREAM)
        cluster = stream.get("cluster", {})
        replicas = ", ".join(
            f"{r['name']}{'' if r.get('current') else ' (behind)'}"
            for r in cluster.get("replicas", [])
        )
        print(
            f"stream {STREAM}: leader {cluster.get('leader')}, replicas {replicas or '-'}, "
            f"{stream['state']['messages']} messages, {stream['state']['bytes']} bytes"
        )
        for stream_name, name in consumer_configs(HubLimits()):
            c = await consumer_info(client, stream_name, name)
            print(
                f"consumer {stream_name}/{name}: pending {c['num_pending']}, "
                f"unacknowledged {c['num_ack_pending']}, waiting pulls {c['num_waiting']}"
            )
        print("presencia / presence:")
        for line in await _presence(client):
            print(line)
    finally:
        await client.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "config":
            plan = PlanFile.model_validate(tomllib.loads(args.plan.read_text()))
            farms = list(load_farm_dir(args.farm_dir))
            created = write_configs(plan, farms, args.secrets_dir, args.out_dir)
            print(
                f"Configuración de {len(plan.nodes)} nodos en / node configurations in "
                f"{args.out_dir}; {len(farms)} farms; new passwords in {args.secrets_dir}: "
                f"{', '.join(created) or 'none'}"
            )
            return 0
        endpoint = _endpoint(args)
        if args.command == "apply":
            return asyncio.run(_apply(endpoint, _limits(args)))
        return asyncio.run(_status(endpoint))
    except (ValidationError, ValueError, OSError, FarmConfigError, tomllib.TOMLDecodeError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    except (HubApiError, TimeoutError, nats.errors.Error) as exc:
        print(f"Hub: {exc}", file=sys.stderr)
        if isinstance(exc, HubApiError) and exc.code == NO_PLACEMENT:
            print(
                "Sugerencia / hint: --max-bytes must fit in every node's max_file_store_gb "
                "(the plan), and --replicas must not exceed the nodes",
                file=sys.stderr,
            )
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
