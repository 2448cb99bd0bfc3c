"""Fixtures: real Mosquitto / InfluxDB / VictoriaMetrics processes on free loopback ports."""

from __future__ import annotations

import itertools
import json
import secrets
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from farmwatch_local.services import InfluxServer, MosquittoServer, VictoriaMetricsServer

REPO = Path(__file__).resolve().parent.parent
FARM_FILES = REPO / "firmware_configs"
COLLECTOR_USER = "farmwatch-collector"
ALERTS_USER = "farmwatch-alerts"
FARMS = ("oax-mixteca", "oax-istmo", "chis-frailesca")


@dataclass
class Broker:
    """A running broker and the credentials it knows."""

    server: MosquittoServer
    passwords: dict[str, str]

    @property
    def port(self) -> int:
        return self.server.port

    def client(self, user: str | None, client_id: str, password: str | None = None) -> paho.Client:
        """A connected MQTT v5 client (network loop running); caller disconnects it."""
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv5,
        )
        if user is not None:
            client.username_pw_set(user, password or self.passwords[user])
        connected = threading.Event()
        client.on_connect = lambda c, u, f, rc, p: connected.set() if not rc.is_failure else None
        client.connect("127.0.0.1", self.port)
        client.loop_start()
        if not connected.wait(10):
            client.loop_stop()
            raise AssertionError(f"could not connect as {user}")
        return client

    def watch(self, topic: str, client_id: str, user: str = COLLECTOR_USER) -> Watcher:
        """A client subscribed to ``topic`` (the broker granted it) collecting payloads."""
        client = self.client(user, client_id)
        watcher = Watcher(client)
        granted = threading.Event()
        client.on_subscribe = lambda c, u, mid, rcs, p: (
            granted.set() if not any(rc.is_failure for rc in rcs) else None
        )
        client.on_message = lambda c, u, message: watcher.payloads.append(message.payload)
        client.subscribe(topic, qos=1)
        if not granted.wait(10):
            client.disconnect()
            raise AssertionError(f"{user} could not subscribe to {topic}")
        return watcher


@dataclass
class Watcher:
    """Payloads received by a subscribed test client."""

    client: paho.Client
    payloads: list[bytes] = field(default_factory=list)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A Mosquitto broker with the shipped policy, a collector user and one user per farm."""
    passwords = {
        user: secrets.token_hex(12) for user in (COLLECTOR_USER, ALERTS_USER, *FARMS, "oax-other")
    }
    server = MosquittoServer(data_dir=tmp_path / "mosquitto", users=passwords)
    server.start()
    yield Broker(server, passwords)
    server.stop()


@dataclass
class Influx:
    """A running InfluxDB 1.x and a database for one test."""

    server: InfluxServer
    database: str

    @property
    def url(self) -> str:
        return self.server.url

    def query(self, influxql: str) -> list[dict[str, Any]]:
        """Rows of an InfluxQL query as dicts (time in ms), all series together."""
        params = urllib.parse.urlencode({"db": self.database, "q": influxql, "epoch": "ms"})
        with urllib.request.urlopen(f"{self.url}/query?{params}", timeout=30) as response:
            answer = json.load(response)
        rows: list[dict[str, Any]] = []
        for result in answer.get("results", []):
            if "error" in result:
                if result["error"].startswith("database not found"):
                    return []  # nothing written yet: the collector creates it
                raise AssertionError(result["error"])
            for series in result.get("series", []):
                tags = series.get("tags", {})
                for values in series.get("values", []):
                    row = dict(zip(series["columns"], values, strict=True))
                    row.update(tags)
                    rows.append(row)
        return rows

    def count(self, measurement: str) -> int:
        """Points in a measurement."""
        rows = self.query(f'SELECT COUNT("value") FROM "{measurement}"')
        return int(rows[0]["count"]) if rows else 0


@pytest.fixture(scope="session")
def influx_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    """One InfluxDB process for the session; each test gets its own database."""
    server = InfluxServer(data_dir=tmp_path_factory.mktemp("influxdb"))
    server.start()
    yield server
    server.stop()


_db_numbers = itertools.count()


@pytest.fixture
def influx(influx_server: InfluxServer) -> Influx:
    """A fresh database name (the collector creates it)."""
    return Influx(influx_server, f"test_{next(_db_numbers)}_{secrets.token_hex(3)}")


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[VictoriaMetricsServer]:
    """VictoriaMetrics, a real server that accepts /api/v2/write."""
    server = VictoriaMetricsServer(data_dir=tmp_path / "vm")
    server.start()
    yield server
    server.stop()


def wait_for(
    predicate: Callable[[], Any], timeout_s: float = 30.0, interval_s: float = 0.05, what: str = ""
) -> Any:
    """Poll until ``predicate()`` is truthy; fail with ``what`` after the timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval_s)
    raise AssertionError(f"timed out waiting for {what or predicate}")


class FrozenClock:
    """Wall clock set by the test; monotonic time is real."""

    def __init__(self, now_ms: int) -> None:
        self.now = now_ms

    def now_ms(self) -> int:
        return self.now

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
