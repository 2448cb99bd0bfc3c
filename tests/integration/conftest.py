"""Fixtures: real Mosquitto / InfluxDB / VictoriaMetrics processes on free loopback ports."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.alerts import gateway, modem_emulator
from support.paths import ALERTS_USER, COLLECTOR_USER, FARMS
from support.servers import Broker, Influx

from farmwatch_local.services import InfluxServer, MosquittoServer, VictoriaMetricsServer

__all__ = ["gateway", "modem_emulator"]  # fixtures of the alerting tests (support/alerts.py)


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
