"""``farmwatch-web``: run the operators' web application, or check its configuration."""

from __future__ import annotations

import argparse
import logging
import sys

import urllib3
import uvicorn
from argon2 import PasswordHasher
from pydantic import ValidationError

from collector.web.alerts_client import AlertsClient
from collector.web.app import WebDeps, create_app
from collector.web.auth import Accounts, Authenticator
from collector.web.balance_view import WaterBalance
from collector.web.ratelimit import LoginThrottle, ThrottlePolicy
from collector.web.readings import Readings
from collector.web.sessions import SessionStore
from collector.web.settings import WebSettings
from collector.web.users import Passwords, User, UsersFileError, load_users
from farmwatch_shared.cli import config_error, setup_logging
from farmwatch_shared.clock import SystemClock
from farmwatch_shared.farm.directory import load_farm_dir
from farmwatch_shared.farm.model import FarmConfig, FarmConfigError
from farmwatch_shared.influx import InfluxV1Writer

DESCRIPTION = """\
Página de agua farmwatch: niveles, días de agua, suelo, lluvia, equipo y alertas por rancho,
para el teléfono (sin JavaScript). Cuentas: farmwatch-web-user.
/ farmwatch web page: levels, days of water left, soil, rain, equipment and alerts per farm,
for the phone (no JavaScript). Accounts: farmwatch-web-user.

Settings come from FARMWATCH_WEB_* environment variables (FARMWATCH_WEB_FARM_DIR,
FARMWATCH_WEB_USERS_FILE, FARMWATCH_WEB_SESSION_DB, FARMWATCH_WEB_INFLUX_URL,
FARMWATCH_WEB_INFLUX_USERNAME, FARMWATCH_WEB_INFLUX_PASSWORD_FILE, FARMWATCH_WEB_ALERTS_API_URLS,
FARMWATCH_WEB_ALERTS_API_TOKEN_FILE, FARMWATCH_WEB_BEHIND_TLS, ...); see docs/web.md.
"""


class AccountsError(ValueError):
    """The accounts do not fit the farm directory."""


def check_accounts(users: dict[str, User], farms: dict[str, FarmConfig]) -> None:
    """Every operator's farms exist in the farm directory."""
    for name, user in sorted(users.items()):
        unknown = [f for f in user.farms if f not in farms]
        if unknown:
            raise AccountsError(
                f"la cuenta {name} nombra ranchos desconocidos / account {name} names unknown "
                f"farms: {', '.join(unknown)}"
            )


def build(settings: WebSettings, farms: dict[str, FarmConfig]) -> WebDeps:
    """The application's parts from its settings."""
    clock = SystemClock()
    assert settings.alerts_api_token is not None  # the settings refuse to load without it

    def reader() -> InfluxV1Writer:
        # one per concurrent use: the readings and the balance of a page are read at once
        return InfluxV1Writer(
            settings.influx_url,
            settings.influx_database,
            username=settings.influx_username,
            password=settings.influx_password,
            timeout_s=10.0,
        )

    timeout = settings.alerts_api_timeout_s
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=min(timeout, 2.0), read=timeout),
        retries=False,
        maxsize=8,  # the overview asks for every farm at once
    )
    accounts = Accounts(settings.users_file)
    policy = ThrottlePolicy(
        free_per_user=settings.login_free_attempts,
        free_per_address=settings.login_free_attempts_per_address,
        base_s=settings.login_backoff_base_s,
        max_s=settings.login_backoff_max_s,
    )
    return WebDeps(
        settings=settings,
        farms=farms,
        accounts=accounts,
        sessions=SessionStore(
            settings.session_db,
            clock,
            idle_s=settings.session_idle_s,
            max_s=settings.session_max_s,
        ),
        authenticator=Authenticator(
            accounts, Passwords(PasswordHasher()), LoginThrottle(clock, policy)
        ),
        readings=Readings(reader().query),
        alerts=AlertsClient(settings.alerts_api_urls, settings.alerts_api_token, http),
        clock=clock,
        balance=WaterBalance(reader()),
    )


def _summary(settings: WebSettings, farms: dict[str, FarmConfig], users: dict[str, User]) -> None:
    roles = {
        r: sum(1 for u in users.values() if u.role == r)
        for r in ("operator", "agronomist", "admin")
    }
    print(
        f"Configuración válida / configuration valid: http://{settings.host}:{settings.port} "
        f"({'behind TLS, Secure cookies' if settings.behind_tls else 'plain HTTP, loopback'}), "
        f"InfluxDB {settings.influx_url} db {settings.influx_database} as "
        f"{settings.influx_username or '(no user)'}, alerting API "
        f"{' → '.join(settings.alerts_api_urls)}, sessions {settings.session_db}"
    )
    print(
        f"  {len(farms)} ranchos/farms: {', '.join(farms)}; {len(users)} cuentas/accounts "
        f"({roles['operator']} operator, {roles['agronomist']} agronomist, "
        f"{roles['admin']} admin)"
    )
    if not users:
        print("  ! sin cuentas / no accounts: farmwatch-web-user add", file=sys.stderr)
    if settings.influx_username is None:
        print(
            "  ! InfluxDB sin usuario de solo lectura / no read-only InfluxDB user",
            file=sys.stderr,
        )


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(
        prog="farmwatch-web",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate settings, farm files, the accounts file and the session database, print "
        "a summary, and exit (0 = valid, 2 = not)",
    )
    args = parser.parse_args(argv)
    try:
        settings = WebSettings()
        farms = load_farm_dir(settings.farm_dir)
        users = load_users(settings.users_file)
        check_accounts(users, farms)
        deps = build(settings, farms)
    except (ValidationError, OSError, FarmConfigError, UsersFileError, AccountsError) as exc:
        return config_error(exc)
    if args.check_config:
        _summary(settings, farms, users)
        deps.sessions.close()
        return 0
    setup_logging(settings.log_level)
    logging.getLogger("farmwatch.web").info(
        "farmwatch-web en / on http://%s:%d, %d ranchos/farms",
        settings.host,
        settings.port,
        len(farms),
    )
    config = uvicorn.Config(
        create_app(deps),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=True,
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or None,
        server_header=False,
        lifespan="off",
    )
    uvicorn.Server(config).run()
    deps.sessions.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
