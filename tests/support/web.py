"""``farmwatch-web`` as its own process for the tests, its accounts, and a small HTTP client
that keeps cookies and never follows redirects (the tests look at each answer)."""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import urllib3
from argon2 import PasswordHasher

from collector.web.users import User, save_users
from farmwatch_local.services import free_port
from support.harness import ChildProcess, write_secret
from support.paths import FARM_FILES
from support.waiting import wait_for

PASSWORDS = {
    "ana": "ana-mixteca-2026",
    "carlos": "carlos-istmo-2026",
    "bea": "bea-agronoma-2026",
    "root": "root-admin-2026!",
}
"""The test accounts' passwords (each one also searched for in the server's log)."""
ACCOUNTS = {
    "ana": ("operator", ("oax-mixteca",), "es"),
    "carlos": ("operator", ("oax-istmo",), "es"),
    "bea": ("agronomist", (), "en"),
    "root": ("admin", (), "es"),
}
"""Name → (role, farms, language)."""
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def write_accounts(path: Path, changed_ms: int = 0) -> dict[str, User]:
    """The accounts file with :data:`ACCOUNTS` (argon2-hashed :data:`PASSWORDS`)."""
    hasher = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
    users = {
        name: User(
            role=role,  # type: ignore[arg-type]
            farms=farms,
            language=language,  # type: ignore[arg-type]
            password_hash=hasher.hash(PASSWORDS[name]),
            changed_ms=changed_ms,
        )
        for name, (role, farms, language) in ACCOUNTS.items()
    }
    save_users(path, users)
    return users


@dataclass
class WebServer:
    """A running ``farmwatch-web``."""

    child: ChildProcess
    port: int
    users_file: Path
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.child.log()

    def stop(self) -> None:
        self.child.stop()


def web_env(
    workdir: Path,
    influx_url: str,
    database: str,
    *,
    api_urls: str,
    farm_dir: Path = FARM_FILES,
    name: str = "web",
    **settings: str,
) -> dict[str, str]:
    """The environment of a ``farmwatch-web`` (``settings``: more FARMWATCH_WEB_* by name)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARMWATCH_")}
    users = workdir / f"{name}-users.json"
    if not users.exists():
        write_accounts(users)
    env.update(
        {
            "FARMWATCH_WEB_PORT": str(free_port()),
            "FARMWATCH_WEB_FARM_DIR": str(farm_dir),
            "FARMWATCH_WEB_USERS_FILE": str(users),
            "FARMWATCH_WEB_SESSION_DB": str(workdir / f"{name}-sessions.sqlite3"),
            "FARMWATCH_WEB_INFLUX_URL": influx_url,
            "FARMWATCH_WEB_INFLUX_DATABASE": database,
            "FARMWATCH_WEB_ALERTS_API_URLS": api_urls,
            "FARMWATCH_WEB_ALERTS_API_TOKEN_FILE": str(
                write_secret(workdir / f"{name}-api-token", "test-api-token-0123456789abcdef")
            ),
        }
    )
    env.update({f"FARMWATCH_WEB_{k.upper()}": v for k, v in settings.items()})
    return env


def start_web(env: dict[str, str], workdir: Path, name: str = "web") -> WebServer:
    """Start ``farmwatch-web`` (``python -m collector.web.cli``) and wait until it answers."""
    child = ChildProcess([sys.executable, "-m", "collector.web.cli"], env, workdir / f"{name}.log")
    child.start()
    server = WebServer(
        child, int(env["FARMWATCH_WEB_PORT"]), Path(env["FARMWATCH_WEB_USERS_FILE"]), env
    )
    http = urllib3.PoolManager(retries=False, timeout=2.0)

    def answers() -> bool:
        assert child.process is not None
        assert child.process.poll() is None, server.log()
        try:
            return http.request("GET", server.url + "/login").status == 200
        except urllib3.exceptions.HTTPError:
            return False

    wait_for(answers, what="farmwatch-web answers")
    return server


@dataclass
class WebClient:
    """A browser-like client without JavaScript or redirects: cookies kept per name."""

    url: str
    cookies: dict[str, str] = field(default_factory=dict)
    http: urllib3.PoolManager = field(
        default_factory=lambda: urllib3.PoolManager(retries=False, timeout=30.0)
    )

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        headers = dict(extra or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return headers

    def _keep(self, response: urllib3.BaseHTTPResponse) -> None:
        for header in response.headers.getlist("Set-Cookie"):
            name, _, rest = header.partition("=")
            value = rest.split(";", 1)[0].strip('"')
            if "Max-Age=0" in header or not value:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value

    def get(self, path: str, headers: dict[str, str] | None = None) -> urllib3.BaseHTTPResponse:
        response = self.http.request(
            "GET", self.url + path, headers=self._headers(headers), redirect=False
        )
        self._keep(response)
        return response

    def post(
        self, path: str, fields: dict[str, str], headers: dict[str, str] | None = None
    ) -> urllib3.BaseHTTPResponse:
        response = self.http.request(
            "POST",
            self.url + path,
            body=urlencode(fields),
            headers={
                **self._headers(headers),
                "Content-Type": "application/x-www-form-urlencoded",
            },
            redirect=False,
        )
        self._keep(response)
        return response

    def csrf(self, path: str) -> str:
        """The CSRF token of the form on ``path``."""
        page = self.get(path)
        assert page.status == 200, (path, page.status)
        match = CSRF.search(page.data.decode())
        assert match is not None, page.data[:500]
        return match.group(1)

    def login(self, name: str, password: str | None = None) -> urllib3.BaseHTTPResponse:
        """Log in through the form (its CSRF token first); returns the POST's answer."""
        token = self.csrf("/login")
        return self.post(
            "/login",
            {"csrf": token, "username": name, "password": password or PASSWORDS[name]},
        )
