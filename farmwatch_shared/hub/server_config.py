"""A hub node's ``nats-server`` configuration: its listeners, JetStream, the cluster routes,
TLS to agents and between nodes, and the account with every user and its rights.

The same text runs the tests' loopback cluster (``farmwatch_local.nats``) and three servers
(``farmwatch-hub config``, docs/scale-out.md); only addresses, paths and TLS files differ.
Passwords arrive here as bcrypt hashes: a node's configuration holds no secret.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from farmwatch_shared.contract import MAX_PAYLOAD_BYTES
from farmwatch_shared.hub.layout import ACCOUNT, Permissions, permissions_of

SYNC_INTERVALS = ("default", "always")
"""``default``: JetStream writes to the OS and syncs to disk every two minutes; an
acknowledged batch is then in the memory of a majority of nodes (2 of 3) and survives any one
node's crash, not a power cut of two nodes at once. ``always``: every write is synced before
it is acknowledged (survives that too, and costs throughput; docs/scale-out.md has figures)."""
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class HubUser:
    """A user of the hub's account: its name and bcrypt hash (``$2a$``/``$2b$``)."""

    name: str
    password_hash: str

    def __post_init__(self) -> None:
        """Check the values."""
        if not self.password_hash.startswith(("$2a$", "$2b$", "$2y$")):
            raise ValueError(f"{self.name}: password_hash is not a bcrypt hash")

    def __repr__(self) -> str:
        """Without the hash."""
        return f"HubUser(name={self.name!r})"


@dataclass(frozen=True)
class HubNode:
    """One node: its name, where clients and the other nodes reach it."""

    name: str
    host: str
    """Address it listens on and the others route to (a name or an IP)."""
    client_port: int = 4222
    cluster_port: int = 6222
    monitor_port: int | None = None


@dataclass(frozen=True)
class NodeTls:
    """PEM files of a node: its certificate and key (server and client use: routes are mutual
    TLS) and the CA that signed every node's and that agents trust."""

    cert_file: Path
    key_file: Path
    ca_file: Path


@dataclass(frozen=True)
class ClusterPlan:
    """The cluster's name, its nodes, and how it stores and verifies."""

    name: str
    nodes: tuple[HubNode, ...]
    sync_interval: str = "default"
    max_file_store: int = 16 * 1024**3
    """Bytes of JetStream file storage a node may use (every stream together)."""
    max_memory_store: int = 256 * 1024**2
    listen_all: bool = False
    """Listen on every interface (``0.0.0.0``) instead of each node's ``host``."""
    client_ping_interval_s: int = 1800
    """The node pings a client that sent nothing for this long (and about once an hour to
    measure its round trip). nats-server's default, 2 minutes, pings an agent between two
    batches ten times, 212 bytes each on its link; the agents' own ping (every 30 minutes)
    and batches (every 20) keep this one quiet. Routes between nodes keep their own 30 s at
    most (nats-server caps them)."""
    extra: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Check the values."""
        if self.sync_interval not in SYNC_INTERVALS:
            raise ValueError(f"sync_interval: one of {', '.join(SYNC_INTERVALS)}")
        names = [node.name for node in self.nodes]
        if len(set(names)) != len(names) or not names:
            raise ValueError("node names must be distinct (and at least one)")
        if self.client_ping_interval_s < 1:
            raise ValueError("client_ping_interval_s: at least 1 s")

    def node(self, name: str) -> HubNode:
        """The node called ``name``."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise ValueError(f"no node {name!r} in the plan ({', '.join(n.name for n in self.nodes)})")


def _render(value: object, indent: int = 0) -> str:
    """NATS configuration syntax: ``key: value`` maps, lists, JSON strings and numbers."""
    pad = "  " * (indent + 1)
    if isinstance(value, Mapping):
        lines = []
        for key, item in value.items():
            name = key if _KEY.match(key) else json.dumps(key)
            lines.append(f"{pad}{name}: {_render(item, indent + 1)}")
        return "{\n" + "\n".join(lines) + "\n" + "  " * indent + "}"
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "[" + ", ".join(_render(item, indent + 1) for item in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(str(value))


def accounts_block(users: Sequence[HubUser]) -> dict[str, object]:
    """The one account with JetStream, each user with its rights (``layout.permissions_of``)."""
    entries: list[dict[str, object]] = []
    for user in users:
        rights: Permissions = permissions_of(user.name)
        entries.append({"user": user.name, "password": user.password_hash, "permissions": rights})
    return {ACCOUNT: {"jetstream": "enabled", "users": entries}}


def node_config(
    plan: ClusterPlan,
    name: str,
    *,
    store_dir: Path,
    users: Sequence[HubUser],
    tls: NodeTls | None,
) -> str:
    """The configuration file of node ``name``."""
    node = plan.node(name)
    host = "0.0.0.0" if plan.listen_all else node.host
    jetstream: dict[str, object] = {
        "store_dir": str(store_dir),
        "max_file_store": plan.max_file_store,
        "max_memory_store": plan.max_memory_store,
    }
    if plan.sync_interval == "always":
        jetstream["sync_interval"] = "always"
    cluster: dict[str, object] = {
        "name": plan.name,
        "listen": f"{host}:{node.cluster_port}",
        "routes": [
            f"{'tls' if tls else 'nats'}://{other.host}:{other.cluster_port}"
            for other in plan.nodes
            if other.name != name
        ],
    }
    config: dict[str, object] = {
        "server_name": node.name,
        "listen": f"{host}:{node.client_port}",
        "max_payload": MAX_PAYLOAD_BYTES + 64 * 1024,
        "ping_interval": f"{plan.client_ping_interval_s}s",
        "jetstream": jetstream,
    }
    if len(plan.nodes) > 1:
        config["cluster"] = cluster
    if node.monitor_port is not None:
        config["http"] = f"{host}:{node.monitor_port}"
    if tls is not None:
        files = {
            "cert_file": str(tls.cert_file),
            "key_file": str(tls.key_file),
            "ca_file": str(tls.ca_file),
        }
        config["tls"] = {**files, "verify": False}  # agents log in with a password
        cluster["tls"] = {**files, "verify": True}  # nodes prove themselves with certificates
    config["accounts"] = accounts_block(users)
    config.update(plan.extra)
    body = _render(config)
    return f"# farmwatch hub node {node.name} (generated by farmwatch-hub config)\n{body[2:-2]}\n"
