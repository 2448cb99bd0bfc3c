"""The demo's web part: the real ``farmwatch-web`` (its own process) on a free loopback port,
reading the demo's InfluxDB and the alerting service's API, with a demo account made by
``farmwatch-web-user add`` (an operator of every farm, a random password per run given on
stdin, kept in the demo's secrets directory with mode 600), and the lines that tell the user
where to open it.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEMO_USER = "demo"
READY_TIMEOUT_S = 60.0


class WebStartError(RuntimeError):
    """farmwatch-web or its account could not be set up; the message says why."""


@dataclass(frozen=True)
class WebSetup:
    """Where the demo's web application keeps its files and finds its data."""

    farm_dir: Path
    farm_ids: tuple[str, ...]
    influx_url: str
    database: str
    alerts_api_url: str
    alerts_token_file: Path
    data: Path
    """Its accounts and sessions go under ``data / "web"``."""
    secrets: Path
    log_dir: Path


@dataclass(frozen=True)
class DemoWeb:
    """The running web application and its demo account."""

    process: subprocess.Popen[bytes]
    url: str
    user: str
    password: str
    password_file: Path

    def lines(self) -> list[str]:
        """What the view prints about it."""
        return [
            f"Página de la finca / farm page: {self.url}/  usuario / user: {self.user}  "
            f"contraseña / password: {self.password}",
            f"  (la contraseña también en / the password also in {self.password_file})",
        ]


def _write_password(directory: Path) -> tuple[str, Path]:
    password = secrets.token_urlsafe(12)  # 16 characters: more than the 10 required
    path = directory / f"web-{DEMO_USER}.password"
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(password + "\n")
    return password, path


def add_demo_account(setup: WebSetup, env: Mapping[str, str], password: str) -> Path:
    """``farmwatch-web-user add demo --role operator --farm …`` (every farm), the password on
    stdin; returns the accounts file."""
    users = setup.data / "web" / "web-users.json"
    command = [
        sys.executable,
        "-m",
        "collector.web.user_cli",
        "--users-file",
        str(users),
        "--farm-dir",
        str(setup.farm_dir),
        "add",
        DEMO_USER,
        "--role",
        "operator",
        *(part for farm in setup.farm_ids for part in ("--farm", farm)),
    ]
    done = subprocess.run(
        command,
        input=password + "\n",
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,  # the error is reported below
    )
    if done.returncode != 0:
        raise WebStartError(f"farmwatch-web-user add: {done.stderr.strip()}")
    return users


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/login", timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, ValueError):
        return False


def wait_answering(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    """Until the login page answers; WebStartError if the process exits or time is up."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise WebStartError(f"farmwatch-web terminó / exited ({process.returncode}): {log}")
        if _answers(url):
            return
        time.sleep(0.2)
    raise WebStartError(f"farmwatch-web no responde / not answering on {url}: {log}")


def start_web(setup: WebSetup, env: Mapping[str, str], port: int) -> DemoWeb:
    """Make the demo account, start ``farmwatch-web`` on ``127.0.0.1:port`` (``env``: the
    environment of a Python process of the demo) and wait until it answers."""
    (setup.data / "web").mkdir(parents=True, exist_ok=True)
    password, password_file = _write_password(setup.secrets)
    base = {k: v for k, v in env.items() if not k.startswith("FARMWATCH_")}
    users = add_demo_account(setup, base, password)
    web_env = {
        **base,
        "FARMWATCH_WEB_HOST": "127.0.0.1",
        "FARMWATCH_WEB_PORT": str(port),
        "FARMWATCH_WEB_FARM_DIR": str(setup.farm_dir),
        "FARMWATCH_WEB_USERS_FILE": str(users),
        "FARMWATCH_WEB_SESSION_DB": str(setup.data / "web" / "sessions.sqlite3"),
        "FARMWATCH_WEB_INFLUX_URL": setup.influx_url,
        "FARMWATCH_WEB_INFLUX_DATABASE": setup.database,
        "FARMWATCH_WEB_ALERTS_API_URLS": setup.alerts_api_url,
        "FARMWATCH_WEB_ALERTS_API_TOKEN_FILE": str(setup.alerts_token_file),
    }
    log = setup.log_dir / "web.log"
    with log.open("ab") as out:
        # its own session: Ctrl-C reaches the demo only, which stops it with SIGTERM (uvicorn
        # raises a SIGINT of the terminal again once it has shut down: a traceback in its log)
        process = subprocess.Popen(
            [sys.executable, "-m", "collector.web.cli"],
            env=web_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_answering(process, url, log)
    except WebStartError:
        process.terminate()
        process.wait(15)
        raise
    return DemoWeb(process, url, DEMO_USER, password, password_file)
