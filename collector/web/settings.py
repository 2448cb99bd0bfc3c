"""Web application settings: environment variables ``FARMWATCH_WEB_*``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from farmwatch_shared.farm.directory import DEFAULT_FARM_DIR
from farmwatch_shared.settings import (
    Port,
    is_loopback_host,
    load_secret_files,
    one_source_per_secret,
)

Language = Literal["es", "en"]
"""The languages of the page: Spanish first, English per user."""


def _http_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http:// or https:// URL with a host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{url!r}: the port is not a number from 1 to 65535") from None
    if port == 0:
        raise ValueError(f"{url!r}: the port is not a number from 1 to 65535")
    return url.rstrip("/")


class WebSettings(BaseSettings):
    """Where the web application listens, reads its data and keeps its accounts."""

    model_config = SettingsConfigDict(env_prefix="FARMWATCH_WEB_", extra="forbid")

    host: str = "127.0.0.1"
    """Address to listen on. Loopback by default: a reverse proxy (nginx, Caddy) in front of
    it does TLS; any other address needs ``behind_tls``."""
    port: Port = 8470
    """TCP port to listen on."""
    behind_tls: bool = False
    """The page is served over HTTPS by a reverse proxy: cookies get ``Secure`` (and the
    ``__Host-`` prefix)."""
    forwarded_allow_ips: str = ""
    """Proxies whose ``X-Forwarded-For`` is believed (comma-separated addresses, e.g.
    ``127.0.0.1`` for a proxy on this machine); empty: none. The login limit counts per
    client address, so behind a proxy this must name it."""

    farm_dir: Path = DEFAULT_FARM_DIR
    """Directory of the farm files (``*.toml``): the farms, their sensors and labels."""
    users_file: Path = Path("/etc/farmwatch/web-users.json")
    """The accounts (``farmwatch-web-user``): role, farms, language and password hash."""
    session_db: Path = Path("/var/lib/farmwatch/web-sessions.sqlite3")
    """SQLite file of the login sessions (and the key the CSRF tokens are signed with)."""
    session_idle_s: int = Field(default=7 * 24 * 3600, ge=60)
    """A session not used for this long ends."""
    session_max_s: int = Field(default=30 * 24 * 3600, ge=60)
    """A session ends this long after the login, used or not."""
    default_language: Language = "es"
    """Language of the login page and of users without one."""

    influx_url: str = "http://localhost:8086"
    """InfluxDB 1.x with the readings (the collector's database)."""
    influx_database: str = "farmwatch"
    influx_username: str | None = None
    """A read-only InfluxDB user (``GRANT READ``): the page never writes."""
    influx_password: SecretStr | None = None
    influx_password_file: Path | None = None

    alerts_api_urls: Annotated[list[str], NoDecode] = ["http://127.0.0.1:8471"]
    """The alerting service's HTTP API, comma-separated; tried in order (a standby or a shard
    that does not own the farm answers 503/404 and the next one is asked)."""
    alerts_api_token: SecretStr | None = None
    """Bearer token of the alerting API (``FARMWATCH_ALERTS_API_TOKEN`` there)."""
    alerts_api_token_file: Path | None = None
    alerts_api_timeout_s: float = Field(default=5.0, gt=0)

    login_free_attempts: int = Field(default=5, ge=1)
    """Failed logins per user name before each further one waits (exponentially longer)."""
    login_free_attempts_per_address: int = Field(default=20, ge=1)
    """Failed logins per client address before it waits (higher: many phones share one
    carrier address)."""
    login_backoff_base_s: float = Field(default=1.0, gt=0)
    """The first wait; each further failure doubles it."""
    login_backoff_max_s: float = Field(default=900.0, gt=0)
    """The longest wait."""

    log_level: str = "INFO"

    @field_validator("influx_url")
    @classmethod
    def _influx_url(cls, url: str) -> str:
        return _http_url(url)

    @field_validator("alerts_api_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("alerts_api_urls")
    @classmethod
    def _api_urls(cls, urls: list[str]) -> list[str]:
        if not urls:
            raise ValueError("name at least one alerting API URL")
        return [_http_url(url) for url in urls]

    @model_validator(mode="before")
    @classmethod
    def _one_source_per_secret(cls, data: Any) -> Any:
        return one_source_per_secret(data, ("influx_password", "alerts_api_token"))

    @model_validator(mode="after")
    def _check(self) -> WebSettings:
        load_secret_files(self, ("influx_password", "alerts_api_token"))
        if self.alerts_api_token is None or not self.alerts_api_token.get_secret_value():
            raise ValueError(
                "alerts_api_token(_file) is required: the alerting API refuses requests "
                "without its bearer token"
            )
        if self.influx_password is not None and self.influx_username is None:
            raise ValueError("influx_password is set but influx_username is not")
        if not self.behind_tls and not is_loopback_host(self.host):
            raise ValueError(
                f"host {self.host} is not loopback and behind_tls is off: passwords and "
                "session cookies would cross the network in plain text (put a TLS reverse "
                "proxy in front and set behind_tls)"
            )
        if self.session_max_s < self.session_idle_s:
            raise ValueError("session_max_s must be at least session_idle_s")
        return self

    def cookie_name(self) -> str:
        """The session cookie's name: ``__Host-`` prefixed behind TLS (the browser then
        refuses it without Secure, from another path or set by a subdomain)."""
        return "__Host-fw_session" if self.behind_tls else "fw_session"

    def login_cookie_name(self) -> str:
        """The pre-session cookie that binds the login form's CSRF token."""
        return "__Host-fw_login" if self.behind_tls else "fw_login"
