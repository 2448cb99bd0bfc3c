"""Handles on the real servers the integration tests start: the broker and InfluxDB."""

from __future__ import annotations

import json
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from farmwatch_local.services import InfluxServer, MosquittoServer
from support.paths import COLLECTOR_USER


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
        client.on_message = lambda c, u, message: watcher.payloads.append(bytes(message.payload))
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
