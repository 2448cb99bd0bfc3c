"""Shared pieces of the alerting tests: the GSM modem emulator on a pty, a Twilio-shaped HTTP
server that records requests, an alert service running on a thread, and ``farmwatch-alerts`` as
its own process with its HTTP API (:func:`alerts_process`, :class:`ApiClient`). The two fixtures
are registered by ``tests/integration/conftest.py``."""

from __future__ import annotations

import base64
import http.client
import json
import logging
import os
import ssl
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from collector.alerts.channels import SmsChannel
from collector.alerts.gate import StoreLease
from collector.alerts.http_gateway import TwilioGateway
from collector.alerts.modem import GsmModem
from collector.alerts.modem_profiles import CLASSIC_2G, ProfileChoice
from collector.alerts.service import AlertService, ServiceTiming, make_consumer
from collector.alerts.timeline import current_boot_id
from farmwatch_emulators.gsm_modem import GsmModemEmulator
from farmwatch_emulators.pty_link import PtyLink
from farmwatch_local.services import free_port
from farmwatch_shared.clock import Clock, SystemClock
from farmwatch_shared.farm.model import FarmConfig
from farmwatch_shared.influx import PointWriter
from farmwatch_shared.mqtt import MqttEndpoint
from farmwatch_shared.problems import ProblemLog
from farmwatch_shared.serial_port import pyserial_factory
from support.harness import ChildProcess, write_secret
from support.paths import ALERTS_USER
from support.servers import Broker
from support.waiting import wait_for

ACCOUNT_SID = "AC0123456789abcdef0123456789abcdef"
AUTH_TOKEN = "test-token-not-secret"


@pytest.fixture
def modem_emulator() -> Iterator[GsmModemEmulator]:
    """A GSM modem emulator serving a pty."""
    link = PtyLink()
    emulator = GsmModemEmulator(link)
    emulator.start()
    yield emulator
    emulator.stop()
    link.close()


def modem_client(
    emulator: GsmModemEmulator,
    timeout_s: float = 1.0,
    profile: ProfileChoice = CLASSIC_2G,
    cnmi: str | None = None,
) -> GsmModem:
    """The real modem channel opening the emulator's tty with pyserial (as the 2G modem the
    tests were written for, unless ``profile`` says otherwise)."""
    return GsmModem(
        pyserial_factory(emulator.link.path, 115200, 0.02),
        SystemClock(),
        profile=profile,
        command_timeout_s=timeout_s,
        send_timeout_s=timeout_s * 2,
        new_message_indication=cnmi,
    )


@dataclass
class RecordedRequest:
    """One request the fake gateway received."""

    path: str
    form: dict[str, str]
    auth: str


@dataclass
class FakeGateway:
    """A local HTTP server answering like Twilio's Messages resource."""

    port: int
    requests: list[RecordedRequest] = field(default_factory=list)
    status: int = 201
    """Answer with this status (set 503 to simulate an outage)."""
    delay_s: float = 0.0
    """Answer this late (longer than the channel's timeout: the outcome is unknown to it)."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def channel(self) -> TwilioGateway:
        return TwilioGateway(self.url, ACCOUNT_SID, SecretStr(AUTH_TOKEN), "+15005550006", 2.0)


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    """A recording Twilio-shaped HTTP server on a free loopback port."""
    fake = FakeGateway(free_port())

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length).decode()
            form = {k: v[0] for k, v in urllib.parse.parse_qs(body).items()}
            auth = base64.b64decode(self.headers.get("Authorization", "Basic ")[6:]).decode()
            status = fake.status
            time.sleep(fake.delay_s)
            if status == 201:
                fake.requests.append(RecordedRequest(self.path, form, auth))
                answer: dict[str, object] = {
                    "sid": f"SM{len(fake.requests):032d}",
                    "status": "queued",
                }
            elif status == 400:  # Twilio quotes the number it refuses
                to = form.get("To", "")
                answer = {"code": 21211, "message": f"The 'To' number {to} is not valid."}
            else:
                answer = {"code": 20500, "message": "unavailable", "status": status}
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", fake.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


@dataclass
class RunningAlerts:
    """An alert service on a thread."""

    service: AlertService
    stop_event: threading.Event
    thread: threading.Thread
    problems: ProblemLog

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(30)
        assert not self.thread.is_alive()


def start_alerts(
    broker: Broker,
    farms: dict[str, FarmConfig],
    state_db: Path,
    clock: Clock,
    *,
    modem: GsmModem | None = None,
    extra_channels: list[SmsChannel] | None = None,
    history_writer: PointWriter | None = None,
    holder: str = "test",
    wait_leader: bool = True,
) -> RunningAlerts:
    """Run the alerting service against the test broker (as the collector's broker user)."""
    problems = ProblemLog(logging.getLogger("test.alerts.problems"))
    channels: list[SmsChannel] = [modem] if modem is not None else []
    channels += extra_channels or []
    service = AlertService(
        farms=farms,
        state_db=state_db,
        consumer=make_consumer(
            MqttEndpoint(
                host="127.0.0.1",
                port=broker.port,
                client_id="farmwatch-alerts",
                username=ALERTS_USER,
                password=SecretStr(broker.passwords[ALERTS_USER]),
            )
        ),
        channels=channels,
        clock=clock,
        problems=problems,
        boot_id=current_boot_id(),
        modem=modem,
        history_writer=history_writer,
        holder=holder,
        gate=StoreLease(state_db, clock, holder, 3.0),
        retry_initial_s=5.0,
        timing=ServiceTiming(tick_s=0.05, idle_s=0.005, inbox_poll_s=0.05, export_s=0.2),
    )
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
    thread.start()
    if wait_leader:
        assert service.leader.wait(10), "alert service did not take the lease"
        assert service.consumer.wait_connected(10), "alert service did not connect"
        assert service.subscribed.wait(10), "alert service did not subscribe"
    return RunningAlerts(service, stop, thread, problems)


API_TOKEN = "test-api-token-0123456789abcdef"


@dataclass
class ApiClient:
    """Calls the alerting API as the web application would (urllib, bearer token)."""

    url: str
    token: str = API_TOKEN
    tls: ssl.SSLContext | None = None

    def call(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        token: str | None = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """(status, JSON answer) of one request; ``token=""`` sends no Authorization."""
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        bearer = self.token if token is None else token
        if bearer:
            request.add_header("Authorization", f"Bearer {bearer}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=10, context=self.tls) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def farm(self, farm: str) -> dict[str, Any]:
        """``GET /v1/farms/<farm>``, which must answer 200."""
        status, answer = self.call("GET", f"/v1/farms/{farm}")
        assert status == 200, answer
        return answer

    def ack(self, incident: int, farm: str, by: str) -> tuple[int, dict[str, Any]]:
        """``POST /v1/incidents/<id>/ack`` from the web."""
        return self.call(
            "POST", f"/v1/incidents/{incident}/ack", {"farm": farm, "by": by, "via": "web"}
        )

    def status(self, farm: str) -> int | None:
        """The status of ``GET /v1/farms/<farm>``, None while nothing listens."""
        try:
            return self.call("GET", f"/v1/farms/{farm}")[0]
        except (OSError, http.client.HTTPException):
            return None


@dataclass
class AlertsProcess:
    """``farmwatch-alerts`` run as its own process, with its API."""

    child: ChildProcess
    api: ApiClient

    def stop(self) -> None:
        self.child.stop()

    def log(self) -> str:
        return self.child.log()

    def wait_subscribed(self) -> None:
        """Until it holds the lease and the broker accepted its subscriptions."""
        process = self.child.process
        assert process is not None
        wait_for(
            lambda: "Suscrito / subscribed" in self.log() or process.poll() is not None,
            what="the alerting service subscribed",
        )
        assert process.poll() is None, self.log()


def alerts_process(
    broker: Broker,
    workdir: Path,
    farm_dir: Path,
    modem_port: str,
    *,
    state_db: Path,
    api_port: int,
    name: str = "alerts",
    extra_env: dict[str, str] | None = None,
) -> AlertsProcess:
    """Start ``farmwatch-alerts`` (``python -m collector.alerts.cli``) on the test broker with
    the modem emulator's tty and its API on ``api_port`` with :data:`API_TOKEN`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARMWATCH_")}
    env.update(
        {
            "FARMWATCH_ALERTS_FARM_DIR": str(farm_dir),
            "FARMWATCH_ALERTS_STATE_DB": str(state_db),
            "FARMWATCH_ALERTS_MQTT_HOST": "127.0.0.1",
            "FARMWATCH_ALERTS_MQTT_PORT": str(broker.port),
            "FARMWATCH_ALERTS_MQTT_USERNAME": ALERTS_USER,
            "FARMWATCH_ALERTS_MQTT_PASSWORD_FILE": str(
                write_secret(workdir / f"{name}.mqtt-password", broker.passwords[ALERTS_USER])
            ),
            "FARMWATCH_ALERTS_MODEM_PORT": modem_port,
            "FARMWATCH_ALERTS_MODEM_COMMAND_TIMEOUT_S": "2",
            "FARMWATCH_ALERTS_API_LISTEN": f"127.0.0.1:{api_port}",
            "FARMWATCH_ALERTS_API_TOKEN_FILE": str(
                write_secret(workdir / f"{name}.api-token", API_TOKEN)
            ),
            "FARMWATCH_ALERTS_LEASE_TTL_S": "3",
        }
    )
    env.update(extra_env or {})
    child = ChildProcess(
        [sys.executable, "-m", "collector.alerts.cli"], env, workdir / f"{name}.log"
    )
    child.start()
    scheme = "https" if "FARMWATCH_ALERTS_API_TLS_CERT" in env else "http"
    return AlertsProcess(child, ApiClient(f"{scheme}://127.0.0.1:{api_port}"))
