"""Every access rule of ``farmwatch-web`` against the running server (its own process, real
InfluxDB): nothing without a login, another farm is a 404 (page, CSV, acknowledgement), every
POST needs its CSRF token, guessing passwords is slowed down, no secret in the log, sessions
end at logout and at a password change, cookies as they should be, conditional GETs."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.servers import Influx
from support.waiting import wait_for
from support.web import PASSWORDS, WebClient, WebServer, start_web, web_env

from farmwatch_local.services import free_port

PAGES = ["/", "/farms/oax-mixteca", "/farms/oax-istmo", "/overview", "/farms/nowhere"]


@pytest.fixture
def web(tmp_path: Path, influx: Influx) -> Iterator[WebServer]:
    """farmwatch-web on the shipped farms; the alerting API does not answer (a closed port)."""
    env = web_env(
        tmp_path,
        influx.url,
        influx.database,
        api_urls=f"http://127.0.0.1:{free_port()}",
        login_free_attempts="5",
        login_free_attempts_per_address="12",
        login_backoff_base_s="2",
    )
    server = start_web(env, tmp_path)
    yield server
    server.stop()


def logged_in(web: WebServer, name: str) -> WebClient:
    client = WebClient(web.url)
    answer = client.login(name)
    assert answer.status == 303, answer.data[:300]
    return client


def test_nothing_without_a_login(web: WebServer) -> None:
    anonymous = WebClient(web.url)
    for path in PAGES:
        answer = anonymous.get(path)
        assert answer.status == 303, path
        assert answer.headers["Location"].startswith("/login?next="), path
        assert b"Mixteca" not in answer.data
    csv = anonymous.get("/farms/oax-mixteca/balance.csv")
    assert csv.status == 401
    ack = anonymous.post("/farms/oax-mixteca/incidents/1/ack", {"csrf": "x"})
    assert ack.status == 401
    assert anonymous.get("/login").status == 200
    # with a made-up session cookie: the same
    anonymous.cookies["fw_session"] = "0" * 43
    assert anonymous.get("/farms/oax-mixteca").status == 303
    assert anonymous.get("/farms/oax-mixteca/balance.csv").status == 401


def test_after_the_login_the_page_asked_for(web: WebServer) -> None:
    client = WebClient(web.url)
    first = client.get("/farms/oax-mixteca?lang=en")
    target = first.headers["Location"]
    token = client.csrf(target)
    answer = client.post(
        "/login",
        {
            "csrf": token,
            "username": "ana",
            "password": PASSWORDS["ana"],
            "next": "/farms/oax-mixteca?lang=en",
        },
    )
    assert answer.status == 303
    assert answer.headers["Location"] == "/farms/oax-mixteca?lang=en"
    page = client.get("/farms/oax-mixteca?lang=en")
    assert page.status == 200
    assert "Rancho modelo La Mixteca" in page.data.decode()
    assert "alert service is unreachable" in page.data.decode()  # no API here


def test_an_operator_gets_404_for_another_farm_page_csv_and_ack(web: WebServer) -> None:
    ana = logged_in(web, "ana")
    own = ana.get("/farms/oax-mixteca")
    assert own.status == 200
    token = re.search(r'name="csrf" value="([^"]+)"', own.data.decode())
    assert token is not None
    missing = ana.get("/farms/nowhere")
    other = ana.get("/farms/oax-istmo")
    assert (missing.status, other.status) == (404, 404)
    assert other.data == missing.data  # nothing tells an existing farm from none
    assert b"Istmo" not in other.data
    assert ana.get("/farms/oax-istmo/balance.csv").status == 404
    assert ana.get("/farms/nowhere/balance.csv").status == 404
    ack = ana.post("/farms/oax-istmo/incidents/1/ack", {"csrf": token.group(1)})
    assert ack.status == 404
    assert ana.get("/overview").status == 404  # operators have no overview
    # one farm: straight to it
    home = ana.get("/")
    assert (home.status, home.headers["Location"]) == (303, "/farms/oax-mixteca")
    assert "reconocimiento / acknowledgement: oax-istmo" not in web.log()
    carlos = logged_in(web, "carlos")
    assert carlos.get("/farms/oax-mixteca").status == 404
    assert carlos.get("/farms/oax-istmo").status == 200


def test_agronomists_see_every_farm_read_only_and_admins_may_acknowledge(
    web: WebServer,
) -> None:
    bea = logged_in(web, "bea")
    assert bea.get("/").status == 200
    for farm in ("oax-mixteca", "oax-istmo", "chis-frailesca"):
        assert bea.get(f"/farms/{farm}").status == 200
    overview = bea.get("/overview")
    assert overview.status == 200
    assert overview.data.decode().count('<tr id="farm-') == 3
    token = bea.csrf("/farms/oax-mixteca")
    refused = bea.post("/farms/oax-mixteca/incidents/1/ack", {"csrf": token})
    assert refused.status == 403
    assert b"Read only" in refused.data
    root = logged_in(web, "root")
    token = root.csrf("/farms/oax-istmo")
    tried = root.post("/farms/oax-istmo/incidents/1/ack", {"csrf": token})
    # allowed: it reached for the alerting API (which does not answer here)
    assert tried.status == 303
    assert tried.headers["Location"] == "/farms/oax-istmo?ack=1&r=unavailable#alerts"


def test_every_post_needs_its_csrf_token(web: WebServer) -> None:
    client = WebClient(web.url)
    client.get("/login")  # the pre-session cookie, but no token in the form
    no_token = client.post("/login", {"username": "ana", "password": PASSWORDS["ana"]})
    assert no_token.status == 403
    assert "fw_session" not in client.cookies
    stranger = WebClient(web.url)
    other_token = stranger.csrf("/login")
    crossed = client.post(
        "/login", {"csrf": other_token, "username": "ana", "password": PASSWORDS["ana"]}
    )
    assert crossed.status == 403  # a token bound to another browser's pre-session
    ana = logged_in(web, "ana")
    assert ana.post("/farms/oax-mixteca/incidents/1/ack", {}).status == 403
    assert ana.post("/farms/oax-mixteca/incidents/1/ack", {"csrf": "forged"}).status == 403
    assert ana.post("/logout", {}).status == 403
    assert ana.get("/farms/oax-mixteca").status == 200  # still logged in
    bea = logged_in(web, "bea")
    bea_token = bea.csrf("/farms/oax-mixteca")
    assert ana.post("/farms/oax-mixteca/incidents/1/ack", {"csrf": bea_token}).status == 403
    assert ana.post("/logout", {"csrf": bea_token}).status == 403


def test_guessing_passwords_is_slowed_per_user_and_per_address(web: WebServer) -> None:
    client = WebClient(web.url)
    for _ in range(5):
        assert client.login("ana", "wrong-password-1").status == 401
    blocked = client.login("ana")  # even the right password waits now
    assert blocked.status == 429
    wait = int(blocked.headers["Retry-After"])
    assert wait >= 1
    assert "Espere" in blocked.data.decode()
    time.sleep(wait + 0.2)
    assert client.login("ana", "wrong-password-2").status == 401  # let through, fails
    again = client.login("ana")
    assert again.status == 429
    assert int(again.headers["Retry-After"]) > wait  # doubled
    time.sleep(int(again.headers["Retry-After"]) + 0.2)
    assert client.login("ana").status == 303
    # one address trying many names: 12 failures free per address here, ana's 6 count too
    for i in range(6):
        assert WebClient(web.url).login(f"nobody{i}", "guess-guess").status == 401
    assert WebClient(web.url).login("carlos").status == 429


def test_no_password_hash_token_or_cookie_in_the_log(web: WebServer) -> None:
    ana = logged_in(web, "ana")
    ana.get("/farms/oax-mixteca")
    token = ana.csrf("/farms/oax-mixteca")
    WebClient(web.url).login("bea", PASSWORDS["carlos"])  # someone's password, wrong account
    WebClient(web.url).login(PASSWORDS["root"], "x")  # a password typed as the user name
    ana.post("/logout", {"csrf": token})
    log = web.log()
    assert "entrada / login: ana" in log  # the log is there, and names who
    assert "entrada fallida / login failed: bea" in log
    for secret in [*PASSWORDS.values(), "$argon2", token, *ana.cookies.values()]:
        assert secret not in log, secret
    assert "test-api-token" not in log
    session = logged_in(web, "carlos").cookies["fw_session"]
    assert session not in web.log()


def test_logout_and_a_new_password_end_the_session(web: WebServer) -> None:
    ana = logged_in(web, "ana")
    old_cookie = dict(ana.cookies)
    token = ana.csrf("/farms/oax-mixteca")
    out = ana.post("/logout", {"csrf": token})
    assert (out.status, out.headers["Location"]) == (303, "/login")
    assert "fw_session" not in ana.cookies
    replay = WebClient(web.url, cookies=old_cookie)
    assert replay.get("/farms/oax-mixteca").status == 303
    # a password change by the CLI: sessions from before it end
    carlos = logged_in(web, "carlos")
    assert carlos.get("/farms/oax-istmo").status == 200
    time.sleep(0.01)
    changed = subprocess.run(
        [
            sys.executable,
            "-m",
            "collector.web.user_cli",
            "--users-file",
            str(web.users_file),
            "passwd",
            "carlos",
        ],
        input="carlos-new-password\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert changed.returncode == 0, changed.stderr
    assert "carlos-new-password" not in changed.stdout + changed.stderr
    wait_for(lambda: carlos.get("/farms/oax-istmo").status == 303, what="the old session ended")
    assert WebClient(web.url).login("carlos").status == 401  # the old password
    fresh = WebClient(web.url)
    assert fresh.login("carlos", "carlos-new-password").status == 303
    assert fresh.get("/farms/oax-istmo").status == 200


def test_session_cookie_attributes(web: WebServer, tmp_path: Path, influx: Influx) -> None:
    client = WebClient(web.url)
    client.csrf("/login")
    answer = client.login("ana")
    (cookie,) = [c for c in answer.headers.getlist("Set-Cookie") if c.startswith("fw_session=")]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path"} <= attributes
    assert "samesite=lax" in cookie.lower()
    assert "secure" not in attributes  # plain HTTP on loopback
    env = web_env(
        tmp_path,
        influx.url,
        influx.database,
        api_urls="http://127.0.0.1:9",
        name="tls",
        behind_tls="true",
    )
    tls = start_web(env, tmp_path, name="tls")
    try:
        behind = WebClient(tls.url)
        login = behind.login("ana")
        (secure,) = [c for c in login.headers.getlist("Set-Cookie") if "fw_session=" in c]
        assert secure.startswith("__Host-fw_session=")
        assert "secure" in {p.strip().lower() for p in secure.split(";")}
    finally:
        tls.stop()


def test_pages_revalidate_with_304_and_the_stylesheet_is_cached_for_a_year(
    web: WebServer,
) -> None:
    ana = logged_in(web, "ana")
    page = ana.get("/farms/oax-mixteca", headers={"Accept-Encoding": "gzip"})
    assert page.status == 200
    assert page.headers["Content-Encoding"] == "gzip"
    etag, modified = page.headers["ETag"], page.headers["Last-Modified"]
    assert page.headers["Cache-Control"] == "private, no-cache"
    assert "Cookie" in page.headers["Vary"]
    assert "script-src" not in page.headers["Content-Security-Policy"]  # default-src 'none'
    assert "<script" not in page.data.decode()
    again = ana.get("/farms/oax-mixteca", headers={"If-None-Match": etag})
    if again.status == 200:  # a minute boundary passed between the two: once more
        etag = again.headers["ETag"]
        again = ana.get("/farms/oax-mixteca", headers={"If-None-Match": etag})
    assert again.status == 304
    assert again.data == b""
    assert again.headers["ETag"] == etag
    assert ana.get("/farms/oax-mixteca", headers={"If-None-Match": '"other"'}).status == 200
    since = ana.get("/farms/oax-mixteca", headers={"If-Modified-Since": modified})
    if since.status == 200:  # across a minute boundary: once more
        modified = since.headers["Last-Modified"]
        since = ana.get("/farms/oax-mixteca", headers={"If-Modified-Since": modified})
    assert since.status == 304
    for path in ("/login", "/farms/nowhere"):  # every HTML answer has both validators
        other = WebClient(web.url) if path == "/login" else ana
        answer = other.get(path)
        assert answer.headers["ETag"].startswith('W/"'), path
        assert answer.headers["Last-Modified"].endswith(" GMT"), path
    css_url = re.search(r'href="(/static/farmwatch\.[0-9a-f]{12}\.css)"', page.data.decode())
    assert css_url is not None
    css = WebClient(web.url).get(css_url.group(1))  # no login needed for the stylesheet
    assert css.status == 200
    assert css.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert WebClient(web.url).get("/static/farmwatch.000000000000.css").status == 404


def test_check_config_and_help(tmp_path: Path, influx: Influx) -> None:
    env = web_env(tmp_path, influx.url, influx.database, api_urls="http://127.0.0.1:9")
    run = [sys.executable, "-m", "collector.web.cli"]
    ok = subprocess.run(
        [*run, "--check-config"], env=env, capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0, ok.stderr
    assert "configuration valid" in ok.stdout
    assert "4 cuentas/accounts" in ok.stdout
    assert "test-api-token" not in ok.stdout + ok.stderr
    helped = subprocess.run([*run, "--help"], env=env, capture_output=True, text=True, check=False)
    assert helped.returncode == 0
    assert "FARMWATCH_WEB_USERS_FILE" in helped.stdout
    bad_cases = {
        "FARMWATCH_WEB_ALERTS_API_TOKEN_FILE": (str(tmp_path / "empty"), "alerts_api_token"),
        "FARMWATCH_WEB_HOST": ("0.0.0.0", "behind_tls"),
        "FARMWATCH_WEB_USERS_FILE": (str(tmp_path / "none.json"), "cannot read"),
        "FARMWATCH_WEB_FARM_DIR": (str(tmp_path), "no farm files"),
        "FARMWATCH_WEB_ALERTS_API_URLS": ("ftp://x", "not an http"),
    }
    (tmp_path / "empty").write_text("\n")
    for name, (value, message) in bad_cases.items():
        refused = subprocess.run(
            [*run, "--check-config"],
            env={**env, name: value},
            capture_output=True,
            text=True,
            check=False,
        )
        assert refused.returncode == 2, name
        assert message in refused.stderr, (name, refused.stderr)
    # an operator whose farm is not in the farm directory
    users = Path(env["FARMWATCH_WEB_USERS_FILE"])
    users.write_text(users.read_text().replace('"oax-istmo"', '"oax-gone"'))
    unknown = subprocess.run(
        [*run, "--check-config"], env=env, capture_output=True, text=True, check=False
    )
    assert unknown.returncode == 2
    assert "oax-gone" in unknown.stderr


def test_without_influxdb_the_page_says_so_and_still_answers(tmp_path: Path) -> None:
    env = web_env(
        tmp_path,
        f"http://127.0.0.1:{free_port()}",
        "farmwatch",
        api_urls=f"http://127.0.0.1:{free_port()}",
        name="nodb",
    )
    server = start_web(env, tmp_path, name="nodb")
    try:
        ana = logged_in(server, "ana")
        page = ana.get("/farms/oax-mixteca")
        assert page.status == 200
        text = page.data.decode()
        assert "La base de datos no responde" in text
        assert "El servicio de alertas no responde" in text
        assert '<td class="n today">—</td>' in text  # unknown, not "0.0"
    finally:
        server.stop()
