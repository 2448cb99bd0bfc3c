"""The pure pieces of farmwatch-web's access rules: CSRF tokens, the login limit, the accounts
file and its passwords, the session store, the redirect after login."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from support.paths import REPO

from collector.web.app import safe_next
from collector.web.auth import loggable_name
from collector.web.csrf import csrf_ok, csrf_token
from collector.web.ratelimit import LoginThrottle, ThrottlePolicy
from collector.web.sessions import SessionStore
from collector.web.settings import WebSettings
from collector.web.users import (
    Passwords,
    User,
    UsersFileError,
    load_users,
    password_problem,
    save_users,
)

KEY = b"k" * 32
# cheap argon2 parameters: the tests check behaviour, not cost
FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


class ManualClock:
    def __init__(self) -> None:
        self.now = 1_764_590_000_000
        self.mono = 1000.0

    def now_ms(self) -> int:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def sleep(self, seconds: float) -> None:
        self.mono += seconds
        self.now += int(seconds * 1000)


# ---- CSRF -----------------------------------------------------------------------------------


def test_a_csrf_token_is_good_only_for_its_binding_and_key() -> None:
    token = csrf_token(KEY, "session-a")
    assert csrf_ok(KEY, "session-a", token)
    assert not csrf_ok(KEY, "session-b", token)
    assert not csrf_ok(b"x" * 32, "session-a", token)
    assert not csrf_ok(KEY, "session-a", token[:-1])


@pytest.mark.parametrize(("binding", "given"), [(None, "t"), ("", "t"), ("s", None), ("s", "")])
def test_a_missing_csrf_token_or_binding_is_refused(binding: str | None, given: str | None) -> None:
    assert not csrf_ok(KEY, binding, given)


# ---- login limit ----------------------------------------------------------------------------


def throttle(clock: ManualClock, **policy: float) -> LoginThrottle:
    return LoginThrottle(clock, ThrottlePolicy(**policy))  # type: ignore[arg-type]


def fail(limit: LoginThrottle, user: str, address: str, times: int) -> None:
    for _ in range(times):
        assert limit.admit(user, address) == 0


def test_five_failures_are_free_then_each_wait_doubles() -> None:
    clock = ManualClock()
    limit = throttle(clock, free_per_user=5, base_s=1.0, max_s=900.0)
    fail(limit, "ana", "10.0.0.1", 4)
    assert limit.retry_after_s("ana", "10.0.0.1") == 0
    fail(limit, "ana", "10.0.0.1", 1)
    waits = []
    for _ in range(4):
        wait = limit.admit("ana", "10.0.0.1")
        assert wait > 0  # refused without counting
        waits.append(wait)
        clock.sleep(wait)
        assert limit.admit("ana", "10.0.0.1") == 0
    assert waits == [1, 2, 4, 8]


def test_the_wait_is_capped() -> None:
    clock = ManualClock()
    limit = throttle(clock, free_per_user=1, base_s=1.0, max_s=60.0, forget_after_s=1e9)
    for _ in range(20):
        clock.sleep(limit.retry_after_s("ana", "a"))
        limit.admit("ana", "a")
    assert limit.retry_after_s("ana", "a") == 60


def test_the_user_limit_holds_from_any_address_and_is_case_blind() -> None:
    clock = ManualClock()
    limit = throttle(clock, free_per_user=3)
    for i in range(3):
        limit.admit("Ana", f"10.0.0.{i}")
    assert limit.retry_after_s("ana", "192.168.1.1") > 0


def test_one_address_guessing_many_names_is_held_back() -> None:
    clock = ManualClock()
    limit = throttle(clock, free_per_user=5, free_per_address=10)
    for i in range(10):
        assert limit.admit(f"user{i}", "10.9.9.9") == 0
    assert limit.retry_after_s("someone-else", "10.9.9.9") > 0
    assert limit.retry_after_s("someone-else", "10.9.9.8") == 0


def test_a_good_password_clears_the_name_but_not_the_address() -> None:
    clock = ManualClock()
    limit = throttle(clock, free_per_user=3, free_per_address=4)
    fail(limit, "ana", "a", 2)
    assert limit.admit("ana", "a") == 0
    limit.succeeded("ana", "a")
    assert limit.retry_after_s("ana", "a") == 0
    fail(limit, "bea", "a", 2)  # the address has 2 failures of ana and these 2: the 4th blocks
    assert limit.retry_after_s("carla", "a") > 0


def test_attempts_in_flight_count_before_their_answer() -> None:
    clock = ManualClock()
    limit = throttle(clock, free_per_user=5)
    admitted = [limit.admit("ana", "a") for _ in range(50)]  # all at once, none answered yet
    assert admitted.count(0) == 5


def test_failures_are_forgotten_after_a_quiet_hour() -> None:
    clock = ManualClock()
    limit = throttle(clock, free_per_user=2, forget_after_s=3600)
    fail(limit, "ana", "a", 2)
    clock.sleep(3601)
    fail(limit, "ana", "a", 1)
    assert limit.retry_after_s("ana", "a") == 0


def test_memory_is_bounded() -> None:
    clock = ManualClock()
    limit = throttle(clock, max_keys=100)
    for i in range(1000):
        limit.admit(f"u{i}", f"a{i}")
    assert len(limit._keys) <= 100


# ---- accounts -------------------------------------------------------------------------------


def user(**changes: object) -> User:
    values: dict[str, object] = {
        "role": "operator",
        "farms": ("oax-mixteca",),
        "password_hash": FAST.hash("correct horse"),
        "changed_ms": 1,
    }
    values.update(changes)
    return User.model_validate(values)


def test_the_accounts_file_round_trips_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    accounts = {"ana": user(), "bea": user(role="agronomist", farms=(), language="en")}
    save_users(path, accounts)
    assert load_users(path) == accounts
    assert path.stat().st_mode & 0o777 == 0o640
    assert path.stat().st_gid == tmp_path.stat().st_gid
    assert "correct horse" not in path.read_text()
    path.chmod(0o600)  # an administrator's choice is kept on the next write
    save_users(path, {"ana": accounts["ana"]})
    assert path.stat().st_mode & 0o777 == 0o600
    assert list(load_users(path)) == ["ana"]


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"farms": ()}, "operator needs at least one farm"),
        ({"role": "admin"}, "sees every farm"),
        ({"role": "boss"}, "role"),
        ({"farms": ("../etc",)}, "farms"),
    ],
)
def test_bad_accounts_are_refused(tmp_path: Path, changes: dict[str, object], match: str) -> None:
    record = json.loads(user().model_dump_json())
    record.update({k: list(v) if isinstance(v, tuple) else v for k, v in changes.items()})
    path = tmp_path / "users.json"
    path.write_text(json.dumps({"version": 1, "users": {"ana": record}}))
    with pytest.raises(UsersFileError, match=match):
        load_users(path)


def test_a_bad_user_name_is_refused(tmp_path: Path) -> None:
    record = json.loads(user().model_dump_json())
    path = tmp_path / "users.json"
    path.write_text(json.dumps({"users": {"Ana Admin": record}}))
    with pytest.raises(UsersFileError, match="Ana Admin"):
        load_users(path)


def test_roles_decide_farms_and_acknowledging() -> None:
    operator = user()
    agronomist = user(role="agronomist", farms=())
    admin = user(role="admin", farms=())
    assert operator.sees("oax-mixteca")
    assert not operator.sees("oax-istmo")
    assert agronomist.sees("oax-istmo")
    assert admin.sees("oax-istmo")
    assert operator.may_acknowledge
    assert admin.may_acknowledge
    assert not agronomist.may_acknowledge


def test_passwords_verify_and_an_unknown_user_never_passes() -> None:
    passwords = Passwords(FAST)
    stored = passwords.hash("correct horse")
    assert passwords.verify(stored, "correct horse")
    assert not passwords.verify(stored, "correct horsE")
    assert not passwords.verify(None, "farmwatch-web: no such user")  # the dummy's own password
    assert not passwords.verify("not-a-hash", "correct horse")


@pytest.mark.parametrize(
    ("password", "ok"), [("short", False), (" padded-password", False), ("long enough pass", True)]
)
def test_new_passwords_need_some_length(password: str, ok: bool) -> None:
    assert (password_problem(password) is None) is ok


@pytest.mark.parametrize(
    ("name", "shown"), [("ana", "ana"), ("S3cret!pass", "<no válido / invalid>")]
)
def test_only_names_that_look_like_names_are_logged(name: str, shown: str) -> None:
    assert loggable_name(name) == shown


# ---- redirect after login -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "goes"),
    [
        ("/farms/oax-mixteca", "/farms/oax-mixteca"),
        ("//evil.example/x", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("", "/"),
        (None, "/"),
    ],
)
def test_after_login_only_local_paths(target: str | None, goes: str) -> None:
    assert safe_next(target) == goes


# ---- sessions -------------------------------------------------------------------------------


def test_sessions_expire_when_idle_or_old_and_logout_deletes(tmp_path: Path) -> None:
    clock = ManualClock()
    store = SessionStore(tmp_path / "s.sqlite3", clock, idle_s=600, max_s=3600)
    session = store.create("ana")
    assert store.get(session.token) == session
    assert store.get(session.token + "x") is None
    for _ in range(6):  # used every 9 minutes: stays, until an hour after the login
        clock.sleep(540)
        assert store.get(session.token) is not None
    clock.sleep(540)
    assert store.get(session.token) is None
    idle = store.create("ana")
    clock.sleep(601)
    assert store.get(idle.token) is None
    gone = store.create("bea")
    store.delete(gone.token)
    assert store.get(gone.token) is None
    store.close()


def test_the_database_holds_no_session_token(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = SessionStore(path, ManualClock(), idle_s=600, max_s=3600)
    session = store.create("ana")
    store.close()
    assert session.token.encode() not in path.read_bytes()


def test_the_csrf_key_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    first = SessionStore(path, ManualClock(), idle_s=600, max_s=3600)
    key = first.signing_key()
    first.close()
    second = SessionStore(path, ManualClock(), idle_s=600, max_s=3600)
    assert second.signing_key() == key
    assert len(key) == 32
    second.close()


def test_the_shipped_web_settings_are_valid_and_behind_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    example = REPO / "deploy" / "env" / "web.env.example"
    for line in example.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, value = line.split("=", 1)
            monkeypatch.setenv(key, value)
    # the secret files exist only on the server
    monkeypatch.delenv("FARMWATCH_WEB_INFLUX_PASSWORD_FILE")
    monkeypatch.delenv("FARMWATCH_WEB_ALERTS_API_TOKEN_FILE")
    monkeypatch.setenv("FARMWATCH_WEB_ALERTS_API_TOKEN", "t" * 32)
    shipped = WebSettings()
    assert shipped.behind_tls
    assert shipped.host == "127.0.0.1"
    assert shipped.cookie_name() == "__Host-fw_session"
    assert shipped.alerts_api_urls == ["http://127.0.0.1:8471"]
    assert shipped.influx_username == "farmwatch-web"
    assert shipped.default_language == "es"


def test_urls_and_plain_http_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FARMWATCH_WEB_ALERTS_API_TOKEN", "t" * 32)
    monkeypatch.setenv("FARMWATCH_WEB_ALERTS_API_URLS", "http://a:8471/, https://b:8471")
    settings = WebSettings()
    assert settings.alerts_api_urls == ["http://a:8471", "https://b:8471"]
    assert settings.cookie_name() == "fw_session"
    monkeypatch.setenv("FARMWATCH_WEB_HOST", "0.0.0.0")
    with pytest.raises(ValueError, match="behind_tls"):
        WebSettings()
    monkeypatch.setenv("FARMWATCH_WEB_BEHIND_TLS", "true")
    assert WebSettings().host == "0.0.0.0"
    monkeypatch.delenv("FARMWATCH_WEB_ALERTS_API_TOKEN")
    with pytest.raises(ValueError, match="alerts_api_token"):
        WebSettings()


def test_every_web_setting_is_documented() -> None:
    docs = (REPO / "docs" / "web.md").read_text()
    for name in WebSettings.model_fields:
        assert f"`FARMWATCH_WEB_{name.upper()}`" in docs, name
