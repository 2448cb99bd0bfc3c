"""Who is asking: the accounts file (read again when ``farmwatch-web-user`` changes it), the
session behind a cookie, and the login check with its rate limit."""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from collector.web.ratelimit import LoginThrottle
from collector.web.sessions import Session, SessionStore
from collector.web.users import USER_NAME_PATTERN, Passwords, User, UsersFileError, load_users

log = logging.getLogger(__name__)

_LOGGABLE_NAME = re.compile(USER_NAME_PATTERN)


def loggable_name(name: str) -> str:
    """A user name as it may appear in a log: only when it looks like one (a password typed
    into the user name box must not end up in the log)."""
    return name if _LOGGABLE_NAME.match(name) else "<no válido / invalid>"


class Accounts:
    """The accounts of the users file, re-read when the file changes (thread-safe)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self._users = load_users(path)

    def _stat(self) -> tuple[int, int, int]:
        info = self._path.stat()
        return (info.st_mtime_ns, info.st_size, info.st_ino)

    def get(self, name: str) -> User | None:
        """The account ``name``, from the file as it is now."""
        with self._lock:
            try:
                stamp = self._stat()
                if stamp != self._stamp:
                    self._users = load_users(self._path)
                    self._stamp = stamp
                    log.info("cuentas releídas / accounts re-read: %d", len(self._users))
            except (OSError, UsersFileError) as exc:
                # a half-edited file must not lock everybody out: keep the last good one
                log.error("cuentas sin cambios / accounts unchanged: %s", exc)  # noqa: TRY400
            return self._users.get(name)


@dataclass(frozen=True)
class Caller:
    """A logged-in request: the session and its account."""

    session: Session
    name: str
    user: User


def caller_of(token: str | None, sessions: SessionStore, accounts: Accounts) -> Caller | None:
    """The caller behind a session cookie; None without a valid session, or when the account
    is gone or its password was changed after the login (the session is then deleted)."""
    session = sessions.get(token)
    if session is None:
        return None
    user = accounts.get(session.username)
    if user is None or user.changed_ms > session.created_ms:
        sessions.delete(session.token)
        return None
    return Caller(session, session.username, user)


class LoginResult(Enum):
    """What a login attempt came to."""

    OK = "ok"
    WRONG = "wrong"
    THROTTLED = "throttled"


class Authenticator:
    """Checks a user name and password, under the login limit."""

    def __init__(self, accounts: Accounts, passwords: Passwords, throttle: LoginThrottle) -> None:
        self._accounts = accounts
        self._passwords = passwords
        self._throttle = throttle

    def retry_after_s(self, name: str, address: str) -> int:
        """Seconds until ``name`` may try from ``address`` (0: now)."""
        return self._throttle.retry_after_s(name, address)

    def check(self, name: str, password: str, address: str) -> LoginResult:
        """Verify (slow: argon2, run it off the event loop) under the login limit."""
        if self._throttle.admit(name, address):
            return LoginResult.THROTTLED
        user = self._accounts.get(name)
        if self._passwords.verify(user.password_hash if user else None, password):
            self._throttle.succeeded(name, address)
            log.info("entrada / login: %s from %s", loggable_name(name), address)
            return LoginResult.OK
        log.warning("entrada fallida / login failed: %s from %s", loggable_name(name), address)
        return LoginResult.WRONG
