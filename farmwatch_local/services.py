"""Real Mosquitto, InfluxDB 1.x and VictoriaMetrics processes on free loopback ports.

Used by the tests, the demo and the benchmarks: each server gets its own data directory and
port, never the system-wide instance. The broker runs with the shipped policy
(``deploy/mosquitto/conf.d/farmwatch.conf``), only its listener and file paths replaced.

Development only (distribution ``farmwatch-devtools``, never on a Pi): this package runs from a
checkout of the repository (editable install, ``make setup``), so ``REPO_ROOT`` is simply the
folder above it, and the broker policy is read from that checkout's ``deploy/``.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The repository checkout this package runs from (see the module docstring)."""
SHIPPED_BROKER_CONF = REPO_ROOT / "deploy" / "mosquitto" / "conf.d" / "farmwatch.conf"
SHIPPED_BROKER_ACL = REPO_ROOT / "deploy" / "mosquitto" / "acl"
_OVERRIDDEN_BROKER_KEYS = {
    "listener",
    # the shipped TLS listener's files: a test adds its own TLS listener (extra_config)
    "cafile",
    "certfile",
    "keyfile",
    "tls_version",
    "password_file",
    "acl_file",
    "persistence_location",
    "log_dest",
    "persistence",
}


class ServiceError(RuntimeError):
    """A server did not start or is not installed."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def require_binary(name: str) -> str:
    """Path of an installed program, or a clear error saying how to install it."""
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and os.path.exists(candidate):
            return candidate
    raise ServiceError(f"{name} is not installed: run `make setup` (apt package for {name})")


def _wait_tcp(port: int, process: subprocess.Popen[bytes], timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceError(f"server exited with {process.returncode}: {_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise ServiceError(f"server did not open port {port}: {_tail(log)}")


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-2000:]
    except OSError:
        return ""


@dataclass
class _Process:
    data_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _wait_ready(self) -> None:
        assert self.process is not None
        _wait_tcp(self.port, self.process, 30.0, self.log_path)

    def start(self) -> None:
        """Start the server and wait until it answers."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self._command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait_ready()

    def stop(self, timeout_s: float = 20.0) -> None:
        """Stop gracefully (SIGTERM), killing it if it does not exit in time."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a power cut would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self) -> None:
        """Stop, then start on the same port with the same data."""
        self.stop()
        self.start()


@dataclass
class MosquittoServer(_Process):
    """A Mosquitto broker with the shipped policy, password file and ACL."""

    users: dict[str, str] = field(default_factory=dict)
    """User name → password (written with mosquitto_passwd)."""
    acl_path: Path = SHIPPED_BROKER_ACL
    extra_config: str = ""

    def _write_config(self) -> Path:
        passwd = self.data_dir / "passwd"
        passwd.write_text("")
        tool = require_binary("mosquitto_passwd")
        for user, password in self.users.items():
            subprocess.run([tool, "-b", str(passwd), user, password], check=True)
        persistence = self.data_dir / "persist"
        persistence.mkdir(exist_ok=True)
        policy = [
            line
            for line in SHIPPED_BROKER_CONF.read_text().splitlines()
            if line.split(" ", 1)[0] not in _OVERRIDDEN_BROKER_KEYS
        ]
        conf = self.data_dir / "mosquitto.conf"
        conf.write_text(
            "\n".join(
                [
                    f"listener {self.port} 127.0.0.1",
                    f"password_file {passwd}",
                    f"acl_file {self.acl_path}",
                    "persistence true",
                    f"persistence_location {persistence}/",
                    "log_dest stdout",
                    f"user {getpass.getuser()}",
                    *policy,
                    self.extra_config,
                ]
            )
            + "\n"
        )
        passwd.chmod(0o600)
        return conf

    def _command(self) -> list[str]:
        return [require_binary("mosquitto"), "-c", str(self._write_config())]


@dataclass
class InfluxServer(_Process):
    """An InfluxDB 1.x server (Debian's influxd) with its own data dirs; HTTP on ``port``."""

    auth_enabled: bool = False

    @property
    def url(self) -> str:
        """Base URL of its HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        rpc_port = free_port()
        conf = self.data_dir / "influxdb.conf"
        conf.write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{self.data_dir}/meta"
[data]
  dir = "{self.data_dir}/data"
  wal-dir = "{self.data_dir}/wal"
  query-log-enabled = false
  wal-fsync-delay = "0s"
[coordinator]
  write-timeout = "10s"
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  auth-enabled = {"true" if self.auth_enabled else "false"}
  log-enabled = false
[continuous_queries]
  enabled = true
  log-enabled = false
  run-interval = "1s"
"""
        )
        return [require_binary("influxd"), "-config", str(conf)]

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceError(f"influxd exited: {_tail(self.log_path)}")
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=1) as response:
                    if response.status == 204:
                        return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise ServiceError(f"influxd not ready: {_tail(self.log_path)}")


@dataclass
class VictoriaMetricsServer(_Process):
    """VictoriaMetrics (Debian package), which accepts InfluxDB's ``/api/v2/write``."""

    extra_args: tuple[str, ...] = ()
    """More command-line flags (``-dedup.minScrapeInterval=1ms``, ``-retentionPeriod=…``)."""

    @property
    def url(self) -> str:
        """Base URL of its HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        return [
            require_binary("victoria-metrics"),
            f"-httpListenAddr=127.0.0.1:{self.port}",
            f"-storageDataPath={self.data_dir / 'storage'}",
            "-search.latencyOffset=0s",
            "-loggerLevel=WARN",
            *self.extra_args,
        ]
