"""The alerting service's HTTP API on the real process (``farmwatch-alerts``), real Mosquitto and
the GSM modem emulator: incidents and forecasts as the web reads them, acknowledgements from the
web and by SMS on one incident state (first one wins), authentication, standby, bad requests."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from support.alerts import API_TOKEN, AlertsProcess, ApiClient, alerts_process
from support.paths import FARM_FILES
from support.servers import Broker
from support.waiting import wait_for

from farmwatch_emulators.gsm_modem import GsmModemEmulator
from farmwatch_local.services import REPO_ROOT, free_port
from farmwatch_shared.contract import (
    Reading,
    ReadingBatch,
    SensorKind,
    encode_batch,
    readings_topic,
)

FARM = "oax-mixteca"
PRIMARY = "+529510000001"
HOUR_MS = 3_600_000
REMINDER_S = 6
TANK_FULL_L = 25_132.7  # vertical cylinder 4 m × 2 m
TANK_USE_L_PER_H = 80.0
TANK_NOW_L = 10_000.0
# the control rule on the tank: fires with the trough, never acknowledged, so its reminders
# show that reminders are being sent while the trough's (acknowledged) are not
TANK_LOW_RULE = f"""
[[alerts]]
id = "tank-low"
type = "level_below"
sensor = "tank-main"
threshold_pct = 50
for_s = 0
reminder_interval_s = {REMINDER_S}
escalate_after_s = 86400
"""


def fast_farm_dir(tmp_path: Path) -> Path:
    """The shipped La Mixteca farm file with the trough rule firing at once, resolving after
    1 s and reminding every few seconds, plus the tank control rule."""
    text = (FARM_FILES / f"{FARM}.toml").read_text()
    start = text.index('id = "trough-north-low"')
    end = text.index("[[alerts]]", start)
    rule = text[start:end]
    fast = (
        rule.replace("for_s = 600", "for_s = 0")
        .replace("resolve_for_s = 300", "resolve_for_s = 1")
        .replace("reminder_interval_s = 7200", f"reminder_interval_s = {REMINDER_S}")
        .replace("escalate_after_s = 3600", "escalate_after_s = 86400")
    )
    assert fast != rule
    farms = tmp_path / "farms"
    farms.mkdir()
    (farms / f"{FARM}.toml").write_text(text[:start] + fast + text[end:] + TANK_LOW_RULE)
    return farms


def publish(broker: Broker, readings: list[tuple[str, int, float, float]], seq0: int) -> None:
    """(sensor, ts, level %, litres) readings of pi-1 as one batch."""
    client = broker.client(FARM, f"publisher-{seq0}")
    batch = ReadingBatch(
        1,
        FARM,
        "pi-1",
        [
            Reading(seq0 + i, sensor, SensorKind.WATER_LEVEL, ts, pct, "%", 0.0, litres)
            for i, (sensor, ts, pct, litres) in enumerate(readings)
        ],
    )
    info = client.publish(readings_topic(FARM, "pi-1"), encode_batch(batch), qos=1)
    info.wait_for_publish(10)
    client.loop_stop()
    client.disconnect()


def tank_falling(now_ms: int) -> list[tuple[str, int, float, float]]:
    """Three hours of the tank falling 80 L/h to 10,000 L now (one reading every 10 min)."""
    rows = []
    for i in range(19):
        ts = now_ms - (18 - i) * 600_000
        litres = TANK_NOW_L + TANK_USE_L_PER_H * (18 - i) / 6
        rows.append(("tank-main", ts, 100 * litres / TANK_FULL_L, litres))
    return rows


def start(
    broker: Broker, tmp_path: Path, modem: GsmModemEmulator, name: str = "alerts", **kw: str
) -> AlertsProcess:
    farms = tmp_path / "farms" if (tmp_path / "farms").exists() else fast_farm_dir(tmp_path)
    return alerts_process(
        broker,
        tmp_path,
        farms,
        modem.link.path,
        state_db=tmp_path / "alerts.sqlite3",
        api_port=free_port(),
        name=name,
        extra_env=kw,
    )


def texts(modem: GsmModemEmulator, head: str) -> list[str]:
    return [m.text for m in modem.sent if m.text.startswith(head)]


def incident_of(view: dict[str, Any], rule: str) -> dict[str, Any]:
    (found,) = [i for i in view["incidents"] if i["rule"] == rule]
    assert isinstance(found, dict)
    return found


def test_the_web_reads_incidents_and_forecasts_and_its_ack_stops_the_reminders(
    broker: Broker, tmp_path: Path, modem_emulator: GsmModemEmulator
) -> None:
    alerts = start(broker, tmp_path, modem_emulator)
    try:
        alerts.wait_subscribed()
        now = int(time.time() * 1000)
        publish(broker, [*tank_falling(now), ("trough-north", now, 19.0, 164.2)], 0)
        wait_for(lambda: len(texts(modem_emulator, "ALERTA")) == 2, what="two alert SMS")

        view = alerts.api.farm(FARM)
        assert view["farm"] == FARM
        assert abs(view["generated_ms"] - time.time() * 1000) < 60_000
        assert [i["rule"] for i in view["incidents"]] == sorted(
            ["tank-low", "trough-north-low"],
            key=lambda r: -incident_of(view, r)["id"],  # newest first
        )
        trough = incident_of(view, "trough-north-low")
        number = trough["id"]
        assert trough == {
            "id": number,
            "rule": "trough-north-low",
            "type": "level_below",
            "sensor": "trough-north",
            "agent": None,
            "severity": "critical",
            "state": "firing",
            "opened_ms": trough["opened_ms"],
            "value": 19.0,
            "acked_ms": None,
            "acked_by": None,
            "acked_via": None,
            "text_es": "Bebedero potrero norte 19% (umbral 25%)",
            "text_en": "north paddock trough 19% (threshold 25%)",
        }
        assert (
            f"ALERTA {number} Rancho modelo La Mixteca: Bebedero potrero norte 19% (umbral "
            f"25%). Responda OK {number}" in texts(modem_emulator, "ALERTA")
        )
        # the tank: 80 L/h over three hours, above the herd's 24 × 60 L a day
        tank = view["forecasts"]["tank-main"]
        assert tank["unit"] == "L"
        assert tank["basis"] == "trend"
        assert tank["use_per_day"] == pytest.approx(24 * TANK_USE_L_PER_H, rel=1e-6)
        assert tank["days_left"] == pytest.approx(TANK_NOW_L / (24 * TANK_USE_L_PER_H), rel=1e-6)
        assert view["forecasts"]["trough-north"] is None  # one reading: no trend yet
        assert view["last_sms"]["kind"] == "firing"
        assert view["last_sms"]["text"].startswith("ALERTA ")
        assert view["last_sms"]["to"] == "…0001"

        status, answer = alerts.api.ack(number, FARM, "ana")
        acked_at = time.time()
        assert (status, answer["acknowledged"]) == (200, True), answer
        assert (answer["acked_by"], answer["acked_via"]) == ("ana", "web")
        # the tank's reminders keep coming; the acknowledged trough's do not
        wait_for(
            lambda: len(texts(modem_emulator, "RECORDATORIO")) >= 2,
            timeout_s=60,
            what="two reminders of the tank",
        )
        assert time.time() - acked_at > REMINDER_S
        reminders = texts(modem_emulator, "RECORDATORIO")
        assert all(not t.startswith(f"RECORDATORIO {number} ") for t in reminders), reminders
        assert all("Tanque" in t for t in reminders), reminders

        after = incident_of(alerts.api.farm(FARM), "trough-north-low")
        assert (after["acked_by"], after["acked_via"]) == ("ana", "web")
        assert after["acked_ms"] is not None
        assert alerts.api.ack(number, FARM, "beto")[1]["acknowledged"] is False

        # the farmer answers the SMS later: the web was first
        modem_emulator.receive_sms(PRIMARY, f"OK {number}")
        wait_for(
            lambda: f"Alerta {number} ya estaba recibida." in texts(modem_emulator, "Alerta"),
            what="the already-acknowledged reply",
        )
        assert f"Alerta {number} recibida, gracias. No se escalará." not in texts(
            modem_emulator, "Alerta"
        )
        final = incident_of(alerts.api.farm(FARM), "trough-north-low")
        assert (final["acked_by"], final["acked_via"]) == ("ana", "web")
    finally:
        alerts.stop()


def test_an_sms_ack_first_then_the_web_is_told_and_a_resolved_incident_is_409(
    broker: Broker, tmp_path: Path, modem_emulator: GsmModemEmulator
) -> None:
    alerts = start(broker, tmp_path, modem_emulator)
    try:
        alerts.wait_subscribed()
        now = int(time.time() * 1000)
        publish(broker, [("trough-north", now, 19.0, 164.2)], 0)
        (alert,) = wait_for(lambda: texts(modem_emulator, "ALERTA"), what="alert SMS")
        number = int(alert.split()[1])
        modem_emulator.receive_sms(PRIMARY, f"OK {number}")
        wait_for(
            lambda: (
                f"Alerta {number} recibida, gracias. No se escalará."
                in texts(modem_emulator, "Alerta")
            ),
            what="the acknowledged reply",
        )
        status, answer = alerts.api.ack(number, FARM, "ana")
        assert status == 200
        assert answer["acknowledged"] is False
        assert (answer["acked_by"], answer["acked_via"]) == ("…0001", "sms")
        status, raw = alerts.api.call("GET", f"/v1/farms/{FARM}")
        assert status == 200
        trough = incident_of(raw, "trough-north-low")
        assert (trough["acked_by"], trough["acked_via"]) == ("…0001", "sms")
        assert PRIMARY not in json.dumps(raw, ensure_ascii=False)
        assert "9510000001" not in json.dumps(raw, ensure_ascii=False)

        publish(broker, [("trough-north", int(time.time() * 1000), 41.0, 354.2)], 1)
        wait_for(lambda: texts(modem_emulator, "RESUELTO"), what="resolution SMS")
        assert alerts.api.farm(FARM)["incidents"] == []
        status, answer = alerts.api.ack(number, FARM, "ana")
        assert status == 409, answer
        assert "error" in answer
    finally:
        alerts.stop()


def _raw_http(port: int, data: bytes) -> tuple[int, dict[str, object]]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_tokens_wrong_farms_and_garbage_are_refused_and_the_service_goes_on(
    broker: Broker, tmp_path: Path, modem_emulator: GsmModemEmulator
) -> None:
    alerts = start(broker, tmp_path, modem_emulator)
    api = alerts.api
    try:
        alerts.wait_subscribed()
        now = int(time.time() * 1000)
        publish(broker, [("trough-north", now, 19.0, 164.2)], 0)
        (alert,) = wait_for(lambda: texts(modem_emulator, "ALERTA"), what="alert SMS")
        number = int(alert.split()[1])

        for token in ("", "wrong-token-0123456789abcdef", API_TOKEN_PREFIX):
            status, answer = api.call("GET", f"/v1/farms/{FARM}", token=token)
            assert status == 401, (token, answer)
            assert "error" in answer
        assert api.call("GET", f"/v1/farms/{FARM}", headers={"Authorization": "Basic eDp5"})[0]
        status, _ = api.call(
            "POST",
            f"/v1/incidents/{number}/ack",
            {"farm": FARM, "by": "x", "via": "web"},
            token="nope-nope-nope-nope",
        )
        assert status == 401

        assert api.call("GET", "/v1/farms/oax-istmo")[0] == 404  # not in this farm directory
        assert api.call("GET", "/v1/farms/..%2Fetc")[0] == 404
        assert api.call("GET", "/v1/nothing")[0] == 404
        assert api.ack(number, "oax-istmo", "ana")[0] == 404  # not a farm of this instance
        assert api.ack(number + 100, FARM, "ana")[0] == 404
        assert api.call("POST", f"/v1/farms/{FARM}", {})[0] == 405
        assert api.call("GET", f"/v1/incidents/{number}/ack")[0] == 405

        path = f"/v1/incidents/{number}/ack"
        garbage: list[bytes] = [
            b"",
            b"{",
            b"[]",
            b"null",
            b'"ok"',
            b"\xff\xfe\x00",
            json.dumps({"farm": FARM, "by": "ana"}).encode(),
            json.dumps({"farm": FARM, "by": "ana", "via": "sms"}).encode(),
            json.dumps({"farm": FARM, "by": "", "via": "web"}).encode(),
            json.dumps({"farm": FARM, "by": "a\nb", "via": "web"}).encode(),
            json.dumps({"farm": FARM, "by": "x" * 65, "via": "web"}).encode(),
            json.dumps({"farm": 7, "by": "ana", "via": "web"}).encode(),
            json.dumps({"farm": FARM, "by": "ana", "via": "web", "admin": True}).encode(),
            b'{"farm": "' + b"[" * 3000 + b'"}',
        ]
        for body in garbage:
            status, answer = api.call("POST", path, raw=body)
            assert status == 400, (body[:60], answer)
            assert isinstance(answer.get("error"), str)
        assert api.call("POST", path, raw=b"{" * 5000)[0] == 413
        port = int(api.url.rsplit(":", 1)[1])
        auth = f"Authorization: Bearer {API_TOKEN}"
        for request, expected in (
            (b"GARBAGE\r\n\r\n", 400),
            (b"GARBAGE / FTP/1.0\r\n\r\n", 400),
            (b"GET /v1/farms/x HTTP/9.9\r\n\r\n", 505),
            (b"GET /v1/farms/x HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n", 431),
            (f"POST {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\n\r\n".encode(), 400),
            (f"POST {path} HTTP/1.1\r\n{auth}\r\nContent-Length: -4\r\n\r\n".encode(), 400),
            (f"POST {path} HTTP/1.1\r\n{auth}\r\nTransfer-Encoding: chunked\r\n\r\n".encode(), 400),
        ):
            status, answer = _raw_http(port, request)
            assert status == expected, (request, answer)
            assert "error" in answer
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /v1/fa")  # and hangs up half-way

        # nothing of that changed the incident or stopped the service
        trough = incident_of(api.farm(FARM), "trough-north-low")
        assert trough["acked_ms"] is None
        assert api.ack(number, FARM, "ana")[1]["acknowledged"] is True
        assert alerts.child.process is not None
        assert alerts.child.process.poll() is None
        assert API_TOKEN not in alerts.log()
    finally:
        alerts.stop()


API_TOKEN_PREFIX = "test-api-token"  # a prefix of the real token is no token


def test_a_standby_answers_503_until_it_takes_over(
    broker: Broker, tmp_path: Path, modem_emulator: GsmModemEmulator
) -> None:
    first = start(broker, tmp_path, modem_emulator, "first")
    first.wait_subscribed()
    second = start(broker, tmp_path, modem_emulator, "second")
    try:
        wait_for(lambda: second.api.status(FARM) == 503, what="the standby's 503")
        status, answer = second.api.call("GET", f"/v1/farms/{FARM}")
        assert status == 503
        assert "error" in answer
        assert second.api.call("GET", f"/v1/farms/{FARM}", token="")[0] == 401
        assert first.api.status(FARM) == 200
        first.stop()  # releases the lease: the standby takes over
        wait_for(lambda: second.api.status(FARM) == 200, what="the new holder's API")
    finally:
        first.stop()
        second.stop()


def test_the_api_over_tls(broker: Broker, tmp_path: Path, modem_emulator: GsmModemEmulator) -> None:
    certs = tmp_path / "certs"
    subprocess.run(
        [
            "sh",
            str(REPO_ROOT / "deploy" / "mosquitto" / "make-tls-certs.sh"),
            str(certs),
            "127.0.0.1",
            "localhost",
        ],
        check=True,
        capture_output=True,
    )
    alerts = start(
        broker,
        tmp_path,
        modem_emulator,
        FARMWATCH_ALERTS_API_TLS_CERT=str(certs / "server.crt"),
        FARMWATCH_ALERTS_API_TLS_KEY=str(certs / "server.key"),
    )
    try:
        alerts.wait_subscribed()
        assert alerts.api.url.startswith("https://")
        secure = ApiClient(alerts.api.url, tls=ssl.create_default_context(cafile=certs / "ca.crt"))
        wait_for(lambda: secure.status(FARM) == 200, what="the API over TLS")
        assert secure.farm(FARM)["farm"] == FARM
        plain = ApiClient(alerts.api.url.replace("https://", "http://"))
        assert plain.status(FARM) is None  # no answer in clear text
        assert secure.farm(FARM)["farm"] == FARM  # the failed handshake hurt nobody
    finally:
        alerts.stop()
