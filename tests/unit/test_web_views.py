"""What the farm page says (collector/web/views.py, i18n.py), the InfluxQL it sends and how it
reads the answer (readings.py), the alerting API's answer (alerts_client.py) and the HTTP
caching rules (responses.py): pure functions on canned data."""

from __future__ import annotations

import json
import string
from datetime import UTC, datetime

import pytest
from support.paths import FARM_FILES

from collector.web import i18n
from collector.web.alerts_client import (
    AlertsUnavailableError,
    FarmAlerts,
    Incident,
    WaterForecast,
    parse_farm_alerts,
)
from collector.web.readings import (
    AgentState,
    FarmReadings,
    Latest,
    RainTotals,
    farm_statements,
    page_window,
    parse_farm,
)
from collector.web.responses import http_date, not_modified, weak_etag
from collector.web.views import farm_page, overview_row, soil_status, trend_text
from farmwatch_shared.farm.model import FarmConfig, load_farm_config

H = 3_600_000
# 2026-12-01 14:30 in Oaxaca (UTC-6) = 20:30 UTC
NOW = int(datetime(2026, 12, 1, 20, 30, tzinfo=UTC).timestamp() * 1000)
TZ = "America/Mexico_City"


@pytest.fixture(scope="module")
def mixteca() -> FarmConfig:
    return load_farm_config(FARM_FILES / "oax-mixteca.toml")


# ---- formats --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "decimals", "text"),
    [
        (13234.46, 0, "13,234"),
        (52.66, 1, "52.7"),
        (-0.04, 1, "0.0"),
        (1234567.891, 1, "1,234,567.9"),
    ],
)
def test_numbers_are_written_the_mexican_way(value: float, decimals: int, text: str) -> None:
    assert i18n.number(value, decimals) == text


@pytest.mark.parametrize(
    ("ms", "es", "en"),
    [
        (20_000, "hace menos de 1 min", "under 1 min ago"),
        (5 * 60_000 + 59_000, "hace 5 min", "5 min ago"),
        (3 * H, "hace 3 h", "3 h ago"),
        (72 * H, "hace 3 d", "3 d ago"),
    ],
)
def test_ages_in_whole_units_never_finer_than_a_minute(ms: int, es: str, en: str) -> None:
    assert i18n.age(ms, "es") == es
    assert i18n.age(ms, "en") == en


@pytest.mark.parametrize(
    ("left", "es"),
    [(0.4, "menos de 1 día"), (1.02, "1 día"), (4.46, "4.5 días"), (12.3, "12 días")],
)
def test_days_of_water(left: float, es: str) -> None:
    assert i18n.days(left, "es") == es


def test_bilingual_labels_show_one_language() -> None:
    label = "Tanque de captación / rainwater tank"
    assert i18n.label_in(label, "es") == "Tanque de captación"
    assert i18n.label_in(label, "en") == "rainwater tank"
    assert i18n.label_in("Humedad del suelo, 15 cm", "en") == "Humedad del suelo, 15 cm"


def test_every_text_has_both_languages_and_the_same_fields() -> None:
    for key, (es, en) in i18n.TEXTS.items():
        assert es
        assert en
        assert sorted(_fields(es)) == sorted(_fields(en)), key


def _fields(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


# ---- trend and soil -------------------------------------------------------------------------


def test_trend_arrow_sign_and_span() -> None:
    latest = Latest(ts_ms=NOW, value=48.0, volume_l=None, agent="pi-1")
    assert trend_text(latest, (NOW - 6 * H, 51.25), "es") == "▼ -3.2 % en 6 h"
    assert trend_text(latest, (NOW - 2 * H, 45.0), "en") == "▲ +3.0 % in 2 h"
    assert trend_text(latest, (NOW - 6 * H, 48.3), "es") == "▶ -0.3 % en 6 h"


def test_no_trend_from_readings_minutes_apart() -> None:
    latest = Latest(ts_ms=NOW, value=48.0, volume_l=None, agent="pi-1")
    assert trend_text(latest, (NOW - 10 * 60_000, 40.0), "es") == ""
    assert trend_text(latest, None, "es") == ""


@pytest.mark.parametrize(
    ("value", "cls"), [(10.0, "bad"), (15.0, "warn"), (25.0, "ok"), (33.0, "wet")]
)
def test_soil_against_wilting_point_and_field_capacity(value: float, cls: str) -> None:
    assert soil_status(value, 12.0, 30.0, "es")[1] == cls


def test_soil_status_says_how_much_available_water_is_left() -> None:
    assert soil_status(15.0, 12.0, 30.0, "es")[0] == "Seco: queda 17 % del agua útil"
    assert soil_status(25.0, 12.0, 30.0, "en")[0] == "Good: 72 % of the available water"
    assert soil_status(25.0, None, 30.0, "es") == ("", "")


# ---- the whole page -------------------------------------------------------------------------


def readings() -> FarmReadings:
    return FarmReadings(
        latest={
            "tank-main": Latest(NOW - 90_000, 52.66, 13234.46, "pi-1"),
            "trough-north": Latest(NOW - 90_000, 19.0, 164.2, "pi-1"),
            "soil-20cm": Latest(NOW - 45 * 60_000, 14.2, None, "pi-1"),
        },
        earlier={"tank-main": (NOW - 6 * H, 55.0)},
        history={"tank-main": [(NOW - 3 * H, 54.0), (NOW - 2 * H, 53.0), (NOW - H, 52.7)]},
        rain={"rain": RainTotals(1.2, 4.4, 30.25)},
        agents={"pi-1": AgentState(NOW - 30_000, True, 7, False, "0.1.0")},
    )


def alerts() -> FarmAlerts:
    return FarmAlerts(
        farm="oax-mixteca",
        generated_ms=NOW,
        incidents=[
            Incident(
                id=3,
                rule="trough-north-low",
                type="level_below",
                severity="critical",
                state="firing",
                opened_ms=NOW - 20 * 60_000,
                sensor="trough-north",
                value=19.0,
                text_es="Bebedero potrero norte 19% (umbral 25%)",
                text_en="North paddock trough 19% (threshold 25%)",
            ),
            Incident(
                id=2,
                rule="pasture-dry",
                type="soil_moisture_below",
                severity="warning",
                state="firing",
                opened_ms=NOW - 5 * H,
                sensor="soil-20cm",
                acked_ms=NOW - H,
                acked_by="…0001",
                acked_via="sms",
                text_es="Pasto seco",
            ),
        ],
        forecasts={
            "tank-main": WaterForecast(12.3, 1400.0, "L", "trend+herd"),
            "trough-north": WaterForecast(None, 0.0, "L", "trend"),
        },
    )


def test_farm_page_shows_the_readings_as_stored(mixteca: FarmConfig) -> None:
    w = page_window(NOW, TZ)
    page = farm_page(mixteca, readings(), alerts(), w, "es", may_ack=True)
    tank, trough = page.vessels
    assert (tank.label, tank.level, tank.litres) == ("Tanque de captación", "52.7 %", "13,234 L")
    assert tank.capacity == "de 25,133 L"
    assert tank.days_left == "Quedan 12 días de agua"
    assert tank.trend == "▼ -2.3 % en 6 h"
    assert tank.age == "lectura hace 1 min"
    assert not tank.stale
    assert not tank.low
    assert tank.spark.startswith("<svg")
    assert trough.low  # under its 25 % rule and with an open incident
    assert trough.days_left == "El nivel no baja"
    (soil,) = page.soils
    assert (soil.value, soil.status_class) == ("14.2 %", "warn")
    assert soil.stale  # 45 minutes old
    assert soil.bounds == "Marchitez 12 % · capacidad de campo 30 %"
    (rain,) = page.rain
    assert (rain.today, rain.week, rain.month) == ("1.2", "4.4", "30.2")  # mm
    (agent,) = page.agents
    assert (agent.state, agent.backlog, agent.clock) == (
        "En línea",
        "7 lecturas por enviar",
        "Reloj sin sincronizar",
    )


def test_alerts_on_the_page_and_who_may_acknowledge(mixteca: FarmConfig) -> None:
    w = page_window(NOW, TZ)
    page = farm_page(mixteca, readings(), alerts(), w, "en", may_ack=True)
    fresh, acked = page.alerts
    assert (fresh.id, fresh.text, fresh.can_ack) == (
        3,
        "North paddock trough 19% (threshold 25%)",
        True,
    )
    assert fresh.severity_class == "critical"
    assert not acked.can_ack
    assert acked.acked == "Acknowledged by …0001 (sms) 1 h ago"
    assert acked.text == "Pasto seco"  # no English text: the Spanish one
    read_only = farm_page(mixteca, readings(), alerts(), w, "en", may_ack=False)
    assert not any(a.can_ack for a in read_only.alerts)


def test_without_the_alerting_service_the_page_still_shows_readings(mixteca: FarmConfig) -> None:
    w = page_window(NOW, TZ)
    page = farm_page(mixteca, readings(), None, w, "es", may_ack=True)
    assert page.alerts_down
    assert page.alerts == []
    assert page.vessels[0].level == "52.7 %"
    assert page.vessels[0].days_left == ""


def test_the_page_is_last_modified_at_its_newest_datum(mixteca: FarmConfig) -> None:
    page = farm_page(mixteca, readings(), alerts(), page_window(NOW, TZ), "es", may_ack=True)
    assert page.content_ms == NOW - 30_000  # the agent status


def test_overview_row(mixteca: FarmConfig) -> None:
    row = overview_row(mixteca, alerts(), readings().agents, "es")
    assert (row.min_days, row.alerts, row.alerting, row.all_online) == ("12 días", "2", True, True)
    down = overview_row(mixteca, None, {}, "en")
    assert (down.min_days, down.alerts, down.agents) == ("?", "?", "Offline (0/1)")


# ---- the InfluxQL of a page -----------------------------------------------------------------


def test_the_page_window_follows_local_days() -> None:
    w = page_window(NOW, TZ)
    midnight = int(datetime(2026, 12, 1, 6, 0, tzinfo=UTC).timestamp() * 1000)
    assert w.day_start_ms == midnight
    assert w.week_start_ms == midnight - 6 * 24 * H
    assert w.month_start_ms == midnight - 29 * 24 * H
    assert w.history_start_ms == NOW - 7 * 24 * H
    assert w.raw_from_ms == NOW // H * H - H


def test_one_page_is_a_bounded_handful_of_statements() -> None:
    statements = farm_statements("oax-mixteca", page_window(NOW, TZ))
    assert len(statements) == 7
    assert all("\"farm\" = 'oax-mixteca'" in s for s in statements)
    assert sum('"agg_15m".' in s for s in statements) == 1
    assert sum('"agg_1d"."rain"' in s for s in statements) == 1


def test_a_farm_id_cannot_break_out_of_its_quotes() -> None:
    (first, *_) = farm_statements("x' OR '1'='1", page_window(NOW, TZ))
    assert "'x\\' OR \\'1\\'=\\'1'" in first


def answer(*results: dict[str, object]) -> dict[str, object]:
    return {"results": [{"statement_id": i, **r} for i, r in enumerate(results)]}


def series(
    name: str, tags: dict[str, str], columns: list[str], *values: list[object]
) -> dict[str, object]:
    return {"name": name, "tags": tags, "columns": columns, "values": list(values)}


def test_reading_an_answer() -> None:
    w = page_window(NOW, TZ)
    day = w.day_start_ms
    result = parse_farm(
        answer(
            {
                "series": [
                    series(
                        "water_level",
                        {"sensor": "tank-main"},
                        ["time", "agent", "value", "volume_l"],
                        [NOW, "pi-1", 52.7, 13234],
                    )
                ]
            },
            {
                "series": [
                    series(
                        "water_level",
                        {"sensor": "tank-main"},
                        ["time", "value"],
                        [NOW - 6 * H, 55.0],
                    )
                ]
            },
            {
                "series": [
                    series(
                        "water_level",
                        {"sensor": "tank-main"},
                        ["time", "value"],
                        [NOW - 3 * H, 54.0],
                    )
                ]
            },
            {
                "series": [
                    series(
                        "water_level", {"sensor": "tank-main"}, ["time", "value"], [NOW - H, 53.0]
                    )
                ]
            },
            {"series": [series("rain", {"sensor": "rain"}, ["time", "value"], [day, 1.2])]},
            {
                "series": [
                    series(
                        "rain",
                        {"sensor": "rain"},
                        ["time", "value"],
                        [w.month_start_ms, 10.0],
                        [w.week_start_ms, 2.0],
                        [day - 24 * H, 1.0],
                    )
                ]
            },
            {
                "series": [
                    series(
                        "agent_status",
                        {"agent": "pi-1"},
                        ["time", "online", "outbox_backlog", "clock_synced", "version"],
                        [NOW, True, 3, True, "0.1.0"],
                    )
                ]
            },
        ),
        w,
    )
    assert result.latest["tank-main"] == Latest(NOW, 52.7, 13234.0, "pi-1")
    assert result.earlier["tank-main"] == (NOW - 6 * H, 55.0)
    assert result.history["tank-main"] == [(NOW - 3 * H, 54.0), (NOW - H, 53.0)]
    assert result.rain["rain"] == RainTotals(1.2, 1.2 + 2.0 + 1.0, 1.2 + 13.0)
    assert result.agents["pi-1"] == AgentState(NOW, True, 3, True, "0.1.0")
    assert result.missing == ()


def test_a_failed_statement_leaves_its_part_out_and_says_so() -> None:
    w = page_window(NOW, TZ)
    result = parse_farm(
        answer(
            {
                "series": [
                    series(
                        "water_level",
                        {"sensor": "tank-main"},
                        ["time", "agent", "value"],
                        [NOW, "pi-1", 52.7],
                    )
                ]
            },
            {},
            {"error": "retention policy not found: agg_15m"},
            {},
            {},
            {"error": "retention policy not found: agg_1d"},
            {},
        ),
        w,
    )
    assert result.missing == ("history", "rain")
    assert result.latest["tank-main"].value == 52.7


# ---- the alerting API's answer --------------------------------------------------------------


def test_the_farm_answer_of_the_contract_decodes() -> None:
    body = json.dumps(
        {
            "farm": "oax-mixteca",
            "generated_ms": NOW,
            "incidents": [
                {
                    "id": 3,
                    "rule": "trough-north-low",
                    "type": "level_below",
                    "sensor": "trough-north",
                    "agent": None,
                    "severity": "critical",
                    "state": "firing",
                    "opened_ms": NOW - 1000,
                    "value": 19.0,
                    "acked_ms": None,
                    "acked_by": None,
                    "acked_via": None,
                    "text_es": "Bebedero 19%",
                    "text_en": "Trough 19%",
                    "added_later": "ignored",
                }
            ],
            "forecasts": {
                "tank-main": {
                    "days_left": 12.3,
                    "use_per_day": 1400.0,
                    "unit": "L",
                    "basis": "trend+herd",
                },
                "trough-north": None,
            },
            "last_sms": {"ts_ms": NOW, "kind": "alert", "text": "Bebedero 19%", "state": "sent"},
        }
    ).encode()
    farm = parse_farm_alerts(body)
    assert farm.incidents[0].text("en") == "Trough 19%"
    assert farm.forecasts["tank-main"] == WaterForecast(12.3, 1400.0, "L", "trend+herd")
    assert farm.forecasts["trough-north"] is None
    assert farm.last_sms is not None


def test_a_malformed_answer_is_an_unavailable_service() -> None:
    with pytest.raises(AlertsUnavailableError, match="malformed"):
        parse_farm_alerts(b'{"farm": 3}')


# ---- caching --------------------------------------------------------------------------------


def test_conditional_get_by_etag_first_then_date() -> None:
    etag = weak_etag(b"<p>page</p>")
    assert etag.startswith('W/"')
    assert weak_etag(b"<p>page!</p>") != etag
    assert not_modified({"if-none-match": etag}, etag, None)
    assert not_modified({"if-none-match": etag.removeprefix("W/")}, etag, None)
    assert not_modified({"if-none-match": f'"x", {etag}'}, etag, None)
    assert not not_modified({"if-none-match": '"x"'}, etag, NOW)
    # If-None-Match wins over If-Modified-Since
    assert not not_modified(
        {"if-none-match": '"x"', "if-modified-since": http_date(NOW)}, etag, NOW
    )
    assert not_modified({"if-modified-since": http_date(NOW)}, etag, NOW)
    assert not not_modified({"if-modified-since": http_date(NOW - 1000)}, etag, NOW)
    assert not not_modified({"if-modified-since": "yesterday"}, etag, NOW)
    assert not not_modified({}, etag, NOW)
