"""The alerting API's answers (``AlertApi.handle``, no socket): the farm view, acknowledgements
from the web and by SMS on one incident state, authentication, standby, and any request at all
answered with JSON, never an exception; the store's migration to ``acked_via``."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from support.alert_feed import FARM, PRIMARY, Feed, level_rule

from collector.alerts.api import AlertApi, Answer
from collector.alerts.commands import CommandHandler
from collector.alerts.history import event_line
from collector.alerts.store import AlertStore
from farmwatch_shared.farm.alert_rules import DaysLeftBelow

TOKEN = "unit-test-token-0123456789"
_FIRING: dict[Path, Feed] = {}
AUTH = f"Bearer {TOKEN}"


def api_for(feed: Feed, serving: bool = True) -> AlertApi:
    return AlertApi(
        {FARM: feed.config},
        lambda: AlertStore(feed.path, feed.clock),
        feed.clock,
        feed.problems,
        SecretStr(TOKEN),
        serving=lambda: serving,
    )


def ack(api: AlertApi, number: int, body: object, auth: str = AUTH) -> Answer:
    return api.handle("POST", f"/v1/incidents/{number}/ack", auth, json.dumps(body).encode())


def firing(tmp_path: Path) -> tuple[Feed, int]:
    feed = Feed(
        tmp_path,
        level_rule(for_s=0, reminder_interval_s=1800),
        DaysLeftBelow(id="tank-days", type="days_left_below", sensor="tank-main", days=1),
    )
    feed.reading("trough-north", 19, at_min=0)
    (alert,) = feed.sms("firing")
    return feed, int(str(alert["incident"]))


def test_the_farm_view_shows_the_open_incident_the_forecasts_and_the_last_sms(
    tmp_path: Path,
) -> None:
    feed, number = firing(tmp_path)
    for minute, pct in [(0, 80.0), (60, 78.0), (120, 76.0)]:  # 2 points (80 L) an hour
        feed.reading("tank-main", pct, at_min=minute)
    answer = api_for(feed).handle("GET", f"/v1/farms/{FARM}", AUTH, b"")
    assert answer.status == 200
    view = answer.body
    assert view["generated_ms"] == feed.clock.now
    (incident,) = view["incidents"]
    assert incident["id"] == number
    assert incident["rule"] == "trough-low"
    assert incident["state"] == "firing"
    assert incident["value"] == 19.0
    assert incident["text_es"] == "Bebedero potrero norte 19% (umbral 25%)"
    assert incident["text_en"] == "north paddock trough 19% (threshold 25%)"
    assert (incident["acked_by"], incident["acked_via"]) == (None, None)
    tank = view["forecasts"]["tank-main"]
    assert tank["unit"] == "L"
    assert tank["use_per_day"] == pytest.approx(80 * 24)
    assert tank["days_left"] == pytest.approx(76 * 40 / (80 * 24))
    assert view["forecasts"]["trough-north"] is None  # one reading
    assert set(view["forecasts"]) == {"tank-main", "trough-north"}
    assert view["last_sms"]["text"].startswith(f"RECORDATORIO {number} ")  # 2 h on: reminders
    assert view["last_sms"]["kind"] == "reminder"
    assert view["last_sms"]["to"] == "…0001"
    assert json.dumps(view, allow_nan=False)


def test_web_first_then_sms_is_already_acknowledged_and_no_reminder_follows(
    tmp_path: Path,
) -> None:
    feed, number = firing(tmp_path)
    api = api_for(feed)
    first = ack(api, number, {"farm": FARM, "by": "ana", "via": "web"})
    assert first == Answer(
        200,
        {"acknowledged": True, "acked_ms": feed.clock.now, "acked_by": "ana", "acked_via": "web"},
    )
    assert (
        ack(api, number, {"farm": FARM, "by": "beto", "via": "web"}).body["acknowledged"] is False
    )
    feed.tick(at_min=200)  # past several reminder intervals
    assert feed.sms("reminder") == []
    feed.store.add_incoming(PRIMARY, f"OK {number}", "26112912000000", feed.clock.now)
    CommandHandler(feed.store, {FARM: feed.config}, feed.clock, feed.problems).handle_pending()
    (reply,) = feed.sms("reply")
    assert reply["text"] == f"Alerta {number} ya estaba recibida."
    (event,) = [e for e in feed.store.events(FARM) if e["to_state"] == "acknowledged"]
    assert 'by="ana"' in event_line(event)
    assert 'via="web"' in event_line(event)


def test_sms_first_then_the_web_sees_the_masked_phone(tmp_path: Path) -> None:
    feed, number = firing(tmp_path)
    feed.store.add_incoming(PRIMARY, f"ok {number}", "26112912000000", feed.clock.now)
    CommandHandler(feed.store, {FARM: feed.config}, feed.clock, feed.problems).handle_pending()
    api = api_for(feed)
    answer = ack(api, number, {"farm": FARM, "by": "ana", "via": "web"})
    assert answer.body == {
        "acknowledged": False,
        "acked_ms": feed.clock.now,
        "acked_by": "…0001",
        "acked_via": "sms",
    }
    view = api.handle("GET", f"/v1/farms/{FARM}", AUTH, b"").body
    assert (view["incidents"][0]["acked_by"], view["incidents"][0]["acked_via"]) == (
        "…0001",
        "sms",
    )
    assert "9510000001" not in json.dumps(view)
    (event,) = [e for e in feed.store.events(FARM) if e["to_state"] == "acknowledged"]
    assert 'by="…0001"' in event_line(event)
    assert "9510000001" not in event_line(event)


def test_resolved_unknown_and_other_farms_incidents(tmp_path: Path) -> None:
    feed, number = firing(tmp_path)
    api = api_for(feed)
    body = {"farm": FARM, "by": "ana", "via": "web"}
    assert ack(api, number + 1, body).status == 404
    assert ack(api, number, {**body, "farm": "oax-istmo"}).status == 404
    assert api.handle("GET", "/v1/farms/oax-istmo", AUTH, b"").status == 404
    feed.reading("trough-north", 40, at_min=1)
    feed.tick(at_min=4)  # recovered for 3 minutes: resolved
    assert feed.sms("resolved")
    assert api.handle("GET", f"/v1/farms/{FARM}", AUTH, b"").body["incidents"] == []
    assert ack(api, number, body).status == 409


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", f"Basic {TOKEN}", f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x"],
)
def test_no_or_a_wrong_token_is_401_before_anything_else(
    tmp_path: Path, authorization: str | None
) -> None:
    feed, _ = firing(tmp_path)
    for serving in (True, False):
        answer = api_for(feed, serving).handle("GET", f"/v1/farms/{FARM}", authorization, b"")
        assert answer.status == 401
        assert set(answer.body) == {"error"}


def test_a_standby_answers_503(tmp_path: Path) -> None:
    feed, number = firing(tmp_path)
    api = api_for(feed, serving=False)
    assert api.handle("GET", f"/v1/farms/{FARM}", AUTH, b"").status == 503
    assert ack(api, number, {"farm": FARM, "by": "ana", "via": "web"}).status == 503
    assert feed.store.incident(number) is not None
    assert feed.store.incident(number).acked_ms is None  # type: ignore[union-attr]


def test_a_failing_store_or_a_bug_is_a_json_error(tmp_path: Path) -> None:
    feed, _ = firing(tmp_path)

    def locked() -> AlertStore:
        raise sqlite3.OperationalError("database is locked")

    def broken() -> AlertStore:
        raise RuntimeError("a bug")

    for open_store, status in ((locked, 503), (broken, 500)):
        api = AlertApi(
            {FARM: feed.config},
            open_store,
            feed.clock,
            feed.problems,
            SecretStr(TOKEN),
            lambda: True,
        )
        answer = api.handle("GET", f"/v1/farms/{FARM}", AUTH, b"")
        assert answer.status == status
        assert set(answer.body) == {"error"}


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "X"]),
    path=st.one_of(
        st.text(max_size=80),
        st.sampled_from(["/v1/farms/", "/v1/incidents/1/ack", "/v1/incidents/99999999999/ack"]),
        st.builds(lambda s: f"/v1/farms/{s}", st.text(max_size=30)),
        st.builds(lambda n: f"/v1/incidents/{n}/ack", st.integers()),
    ),
    body=st.one_of(
        st.binary(max_size=200),
        st.builds(
            lambda d: json.dumps(d).encode(),
            st.dictionaries(
                st.sampled_from(["farm", "by", "via", "x"]),
                st.one_of(st.text(max_size=70), st.integers(), st.none(), st.just(FARM)),
            ),
        ),
    ),
)
def test_any_request_gets_a_json_answer(
    tmp_path: Path, method: str, path: str, body: bytes
) -> None:
    if tmp_path not in _FIRING:  # one firing incident (number 1) for all the examples
        _FIRING[tmp_path] = firing(tmp_path)[0]
    answer = api_for(_FIRING[tmp_path]).handle(method, path, AUTH, body)
    assert answer.status in (200, 400, 404, 405, 409)
    json.dumps(answer.body, allow_nan=False)
    if answer.status != 200:
        assert isinstance(answer.body["error"], str)


def test_an_old_database_gains_acked_via_on_open(tmp_path: Path) -> None:
    path = tmp_path / "alerts.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE incidents (
            id INTEGER PRIMARY KEY AUTOINCREMENT, farm TEXT NOT NULL, rule TEXT NOT NULL,
            opened_ms INTEGER NOT NULL, resolved_ms INTEGER, acked_ms INTEGER, acked_by TEXT
        );
        INSERT INTO incidents VALUES (1, 'oax-mixteca', 'r', 1, NULL, 5, '+529510000001');
        INSERT INTO incidents VALUES (2, 'oax-mixteca', 'r', 6, NULL, NULL, NULL);
        """
    )
    old.commit()
    old.close()
    feed = Feed(tmp_path, level_rule())  # opens the store on that file
    acked, open_ = feed.store.incident(1), feed.store.incident(2)
    assert acked is not None
    assert (acked.acked_by, acked.acked_via) == ("+529510000001", "sms")
    assert open_ is not None
    assert open_.acked_via is None
    assert feed.store.acknowledge(2, "ana", 7, via="web")
    feed.restart()  # opening it again changes nothing
    again = feed.store.incident(2)
    assert again is not None
    assert (again.acked_by, again.acked_via, again.acked_ms) == ("ana", "web", 7)
