"""The alerting service's HTTP API: the one way anything else (the web application) reads the
incident state and acknowledges an incident. The alerting service stays the only writer of its
SQLite database; an acknowledgement here goes through the same ``AlertStore.acknowledge`` as an
``OK n`` SMS (the first one wins, recorded with who and how).

* ``GET /v1/farms/<farm>``: open incidents, days-left forecasts per tank and trough (the same
  ``water_forecast`` the rules use), the last SMS.
* ``POST /v1/incidents/<id>/ack`` with ``{"farm": ..., "by": <user>, "via": "web"}``.

Every request needs ``Authorization: Bearer <token>`` (401), a standby instance (sender lease
not held) answers 503, a farm this instance does not own 404, so a client with several URLs
tries the next. Errors are JSON ``{"error": ...}``; a malformed request is 400 and whatever goes
wrong with one request stays with it. Served by the standard library's threading HTTP server
(small, local traffic), HTTPS with a certificate and key when configured. See docs/alerts.md.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import socket
import sqlite3
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec
from pydantic import SecretStr

from collector.alerts.evaluate import water_forecast
from collector.alerts.forecast import Forecast
from collector.alerts.messages import AlertFacts, describe
from collector.alerts.privacy import mask_phone, redact
from collector.alerts.store import AlertStore, Incident
from farmwatch_shared.clock import Clock
from farmwatch_shared.contract import IDENT_PATTERN
from farmwatch_shared.farm.alert_rules import AlertRule, DaysLeftBelow, Silent
from farmwatch_shared.farm.model import FarmConfig, WaterLevelSensor
from farmwatch_shared.problems import ProblemLog

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 4096
MAX_CONCURRENT = 16
"""Requests served at once; a further connection is closed at once (the web is one client)."""
REQUEST_TIMEOUT_S = 10.0
"""A client that sends nothing for this long is disconnected (it holds a thread)."""

_FARM_PATH = re.compile(rf"^/v1/farms/({IDENT_PATTERN.strip('^$')})$")
_ACK_PATH = re.compile(r"^/v1/incidents/([0-9]{1,15})/ack$")


class AckRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The body of ``POST /v1/incidents/<id>/ack``."""

    farm: Annotated[str, msgspec.Meta(pattern=IDENT_PATTERN)]
    by: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]
    """The user name of whoever pressed the button."""
    via: Literal["web"]
    """Only the web acknowledges through the API; ``sms`` acknowledgements come by SMS."""


@dataclass(frozen=True)
class Answer:
    """An HTTP status and its JSON body."""

    status: int
    body: dict[str, Any]


def _error(status: HTTPStatus, text: str) -> Answer:
    return Answer(status, {"error": text})


@dataclass(frozen=True)
class ApiConfig:
    """Where and how the API listens."""

    host: str
    port: int
    token: SecretStr
    tls: ssl.SSLContext | None
    """HTTPS with this context; None: plain HTTP (loopback only, checked by the settings)."""


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server-side TLS context (TLS 1.2+) from PEM files; raises OSError / ssl.SSLError."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


def rule_facts(farm: FarmConfig, rule: AlertRule, value: float | None, incident: int) -> AlertFacts:
    """What an incident's text says (the condition of its SMS, without the days left)."""
    sensor_id = getattr(rule, "sensor", None)
    if sensor_id is not None:
        sensor = next((s for s in farm.sensors if s.id == sensor_id), None)
        label = (sensor.label if sensor is not None else "") or sensor_id
    elif isinstance(rule, Silent):
        label = rule.agent or ""
    else:
        label = ""
    return AlertFacts(farm.farm.name, rule, label, value, None, incident)


def forecast_json(result: Forecast | None) -> dict[str, Any] | None:
    """A forecast as the API shows it (None: not enough readings for a trend)."""
    if result is None:
        return None
    return {
        "days_left": result.days_left,
        "use_per_day": result.use_per_day,
        "unit": result.unit,
        "basis": result.basis,
        "current": result.current,
    }


class AlertApi:
    """Answers API requests (no I/O of its own but the store): one call per request, from any
    thread; ``open_store`` gives that request its own connection."""

    def __init__(
        self,
        farms: Mapping[str, FarmConfig],
        open_store: Callable[[], AlertStore],
        clock: Clock,
        problems: ProblemLog,
        token: SecretStr,
        serving: Callable[[], bool],
    ) -> None:
        self._farms = dict(farms)
        self._open_store = open_store
        self._clock = clock
        self._problems = problems
        self._token = token.get_secret_value().encode()
        self._serving = serving

    def handle(self, method: str, target: str, authorization: str | None, body: bytes) -> Answer:
        """The answer to one request; never raises."""
        try:
            if not self._authorized(authorization):
                self._problems.report("api_unauthorized", f"{method} {target[:80]!r}")
                return _error(HTTPStatus.UNAUTHORIZED, "falta el token / bearer token required")
            if not self._serving():
                return _error(
                    HTTPStatus.SERVICE_UNAVAILABLE, "instancia en espera / standby instance"
                )
            return self._route(method, urlsplit(target).path, body)
        except sqlite3.OperationalError as exc:
            self._problems.report("api_store_unavailable", redact(str(exc)))
            return _error(HTTPStatus.SERVICE_UNAVAILABLE, "base no disponible / store unavailable")
        except Exception as exc:  # noqa: BLE001 - one request's failure stays with it
            self._problems.report(f"api_failed_{type(exc).__name__}", redact(str(exc)))
            return _error(HTTPStatus.INTERNAL_SERVER_ERROR, "error interno / internal error")

    def _authorized(self, authorization: str | None) -> bool:
        scheme, _, token = (authorization or "").partition(" ")
        given = token.strip().encode("utf-8", "replace")
        # compare_digest takes time independent of where the tokens differ
        return scheme.lower() == "bearer" and hmac.compare_digest(given, self._token)

    def _route(self, method: str, path: str, body: bytes) -> Answer:
        if (m := _FARM_PATH.match(path)) is not None:
            if method != "GET":
                return _error(HTTPStatus.METHOD_NOT_ALLOWED, "use GET")
            return self._farm_view(m.group(1))
        if (m := _ACK_PATH.match(path)) is not None:
            if method != "POST":
                return _error(HTTPStatus.METHOD_NOT_ALLOWED, "use POST")
            return self._ack(int(m.group(1)), body)
        return _error(HTTPStatus.NOT_FOUND, "no existe / not found")

    # -- GET /v1/farms/<farm> ---------------------------------------------------------------

    def _farm_view(self, farm_id: str) -> Answer:
        farm = self._farms.get(farm_id)
        if farm is None:
            return _error(HTTPStatus.NOT_FOUND, "granja desconocida / unknown farm")
        store = self._open_store()
        try:
            now = self._clock.now_ms()
            incidents = [
                view
                for incident in store.open_incidents(farm_id)
                if (view := self._incident_view(store, farm, incident)) is not None
            ]
            forecasts = {
                sensor.id: forecast_json(
                    water_forecast(store, farm_id, sensor.id, now, _days_rule(farm, sensor.id))
                )
                for sensor in farm.sensors
                if isinstance(sensor, WaterLevelSensor)
            }
            last = store.last_sms(farm_id)
        finally:
            store.close()
        last_sms = None
        if last is not None:
            last_sms = {
                "ts_ms": last["sent_ms"] or last["created_ms"],
                "kind": last["kind"],
                "text": last["text"],
                "state": last["state"],
                "to": mask_phone(str(last["phone"])),
                "incident": last["incident"],
            }
        return Answer(
            HTTPStatus.OK,
            {
                "farm": farm_id,
                "generated_ms": now,
                "incidents": incidents,
                "forecasts": forecasts,
                "last_sms": last_sms,
            },
        )

    def _incident_view(
        self, store: AlertStore, farm: FarmConfig, incident: Incident
    ) -> dict[str, Any] | None:
        """An open incident as the API shows it; None when its rule is no longer in the farm
        file (nothing evaluates it any more) or has moved on to another incident."""
        rule = next((r for r in farm.alerts if r.id == incident.rule), None)
        state = store.rule_state(farm.farm.id, incident.rule)
        if rule is None or state.incident != incident.id:
            return None
        if state.state not in ("pending", "firing"):
            return None
        facts = rule_facts(farm, rule, state.value, incident.id)
        return {
            "id": incident.id,
            "rule": rule.id,
            "type": rule.type,
            "sensor": getattr(rule, "sensor", None),
            "agent": getattr(rule, "agent", None),
            "severity": rule.severity,
            "state": state.state,
            "opened_ms": incident.opened_ms,
            "value": state.value,
            **_ack_view(incident),
            "text_es": describe(facts, "es"),
            "text_en": describe(facts, "en"),
        }

    # -- POST /v1/incidents/<id>/ack --------------------------------------------------------

    def _ack(self, number: int, body: bytes) -> Answer:
        try:
            request = msgspec.json.decode(body, type=AckRequest)
        except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
            return _error(HTTPStatus.BAD_REQUEST, f"cuerpo inválido / invalid body: {exc}"[:300])
        if request.farm not in self._farms:
            return _error(HTTPStatus.NOT_FOUND, "granja desconocida / unknown farm")
        store = self._open_store()
        try:
            incident = store.incident(number)
            if incident is None or incident.farm != request.farm:
                return _error(HTTPStatus.NOT_FOUND, f"no hay alerta {number} / no alert {number}")
            if incident.resolved_ms is not None:
                return _error(HTTPStatus.CONFLICT, f"alerta {number} resuelta / resolved")
            first = store.acknowledge(number, request.by, self._clock.now_ms(), via="web")
            incident = store.incident(number)
        finally:
            store.close()
        assert incident is not None
        if first:
            log.info("Alerta %d reconocida / acknowledged by %s (web)", number, request.by)
        return Answer(HTTPStatus.OK, {"acknowledged": first, **_ack_view(incident)})


def _days_rule(farm: FarmConfig, sensor_id: str) -> DaysLeftBelow | None:
    """The days-left rule of a sensor, whose trend settings its forecast uses (as the rules,
    the SMS texts and the NIVEL reply do)."""
    return next(
        (r for r in farm.alerts if isinstance(r, DaysLeftBelow) and r.sensor == sensor_id), None
    )


def _ack_view(incident: Incident) -> dict[str, Any]:
    """Who acknowledged and how; a phone number leaves masked."""
    by = incident.acked_by
    if by is not None and incident.acked_via != "web":
        by = mask_phone(by)
    return {"acked_ms": incident.acked_ms, "acked_by": by, "acked_via": incident.acked_via}


# -- the HTTP server ---------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, config: ApiConfig, api: AlertApi, problems: ProblemLog) -> None:
        self.api = api
        self.problems = problems
        self._slots = threading.BoundedSemaphore(MAX_CONCURRENT)
        host = config.host
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, config.port), _Handler)
        if config.tls is not None:
            # the handshake happens in the request's thread (_Handler.setup), never in accept
            self.socket = config.tls.wrap_socket(
                self.socket, server_side=True, do_handshake_on_connect=False
            )

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.problems.report("api_busy", "demasiadas conexiones / too many connections")
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a connection that failed (TLS handshake, reset, timeout) is that client's problem
        self.problems.report("api_connection_failed", f"{client_address[0]}")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body leave in separate writes: with Nagle's algorithm on, a kept-alive
    # client's delayed ACK held the body back ~40 ms per request (benchmark 8).
    disable_nagle_algorithm = True
    server_version = "farmwatch-alerts"
    sys_version = ""
    timeout = REQUEST_TIMEOUT_S

    def setup(self) -> None:
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()

    def do_GET(self) -> None:
        self._answer(b"")

    def do_POST(self) -> None:
        if self.headers.get("Transfer-Encoding") is not None:
            self.close_connection = True
            self._send(_error(HTTPStatus.BAD_REQUEST, "Content-Length required, no chunks"))
            return
        length = self.headers.get("Content-Length", "")
        if not length.isdigit():
            self.close_connection = True
            self._send(_error(HTTPStatus.BAD_REQUEST, "Content-Length required"))
            return
        if int(length) > MAX_BODY_BYTES:
            self.close_connection = True
            self._send(_error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body too large"))
            return
        self._answer(self.rfile.read(int(length)))

    def do_PUT(self) -> None:
        self.do_POST()

    def do_DELETE(self) -> None:
        self._answer(b"")

    def do_PATCH(self) -> None:
        self.do_POST()

    def _answer(self, body: bytes) -> None:
        self._send(
            self.server.api.handle(self.command, self.path, self.headers.get("Authorization"), body)
        )

    def _send(self, answer: Answer) -> None:
        try:
            data = json.dumps(answer.body, ensure_ascii=False, allow_nan=False).encode()
        except ValueError:
            answer = _error(HTTPStatus.INTERNAL_SERVER_ERROR, "valor no numérico / not a number")
            data = json.dumps(answer.body).encode()
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        if answer.status == HTTPStatus.UNAUTHORIZED:
            self.send_header("WWW-Authenticate", 'Bearer realm="farmwatch-alerts"')
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (malformed request line, header too long, unknown
        method) as JSON too, with a status line even for what parses as HTTP/0.9."""
        self.close_connection = True
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.0"
        self._send(_error(HTTPStatus(code), message or HTTPStatus(code).phrase))

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("api %s: " + format, self.client_address[0], *args)


class ApiServer:
    """The API bound to its address; :meth:`serve` runs it until ``stop`` (a supervised
    worker of the alerting service)."""

    def __init__(self, config: ApiConfig, api: AlertApi, problems: ProblemLog) -> None:
        self._server = _Server(config, api, problems)
        self._server.timeout = 0.2

    @property
    def port(self) -> int:
        """The port it is bound to."""
        return int(self._server.server_address[1])

    def serve(self, stop: threading.Event) -> None:
        """Answer requests (each in its own thread) until ``stop`` is set, then close."""
        try:
            while not stop.is_set():
                self._server.handle_request()
        finally:
            self._server.server_close()
