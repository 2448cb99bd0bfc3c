"""Benchmark 8: the operators' farm page (``farmwatch-web``): its weight in a real Chromium and
its server time with 3 and with 100 farms of data.

* Weight: Debian's headless Chromium logs in through the form, its cache is emptied (the login
  page had fetched the stylesheet), then loads a farm page: the bytes it transferred, as the
  browser itself reports them (``performance.getEntries()`` ``transferSize``: headers and
  compressed bodies of the page, its stylesheet and images), against Grafana's published figure
  for its entry JavaScript alone (8.6 MiB, grafana/grafana#92490). Then a reload, where the
  page is revalidated (ETag: 304) and the stylesheet comes from the cache.
* Server time: one farm page after another over HTTP on loopback, as a client sees it (request
  to last byte) and as the application reports it (``Server-Timing``), with the shipped three
  farms and with 100 generated ones. Each farm has 8 days of 10-minute readings of every sensor
  and 30 days of hourly rain in a real InfluxDB (aggregates computed with
  ``collector.influx_setup.backfill``), and the real alerting service (in this process, its
  API on loopback, the GSM modem emulator) holds their last six hours for its forecasts.

Run alone: ``.venv/bin/python -m benchmarks.web`` (``make bench`` runs it with the others).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import paho.mqtt.client as paho
import urllib3
from argon2 import PasswordHasher
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import SecretStr
from selenium.webdriver.common.by import By

from benchmarks.common import FARM_FILES, Stack
from collector.alerts.api import ApiConfig
from collector.alerts.gate import StoreLease
from collector.alerts.modem import GsmModem
from collector.alerts.modem_profiles import CLASSIC_2G
from collector.alerts.service import AlertService, make_consumer
from collector.alerts.timeline import current_boot_id
from collector.influx_setup import RetentionPlan, apply, backfill
from collector.web.users import User, save_users
from farmwatch_emulators.gsm_modem import GsmModemEmulator
from farmwatch_emulators.pty_link import PtyLink
from farmwatch_emulators.scenario import DroughtScenario
from farmwatch_local.browser import PHONE, chromium, transfer_sizes
from farmwatch_local.services import MosquittoServer, free_port
from farmwatch_shared.clock import SystemClock
from farmwatch_shared.contract import (
    Reading,
    ReadingBatch,
    SensorKind,
    encode_batch,
    readings_topic,
)
from farmwatch_shared.farm.directory import load_farm_dir
from farmwatch_shared.farm.model import (
    FarmConfig,
    RainGauge,
    SoilMoistureSensor,
    WaterLevelSensor,
)
from farmwatch_shared.influx import InfluxV1Writer
from farmwatch_shared.mqtt import MqttEndpoint
from farmwatch_shared.problems import ProblemLog
from farmwatch_shared.serial_port import pyserial_factory

GRAFANA_ENTRY_JS_KIB = 8.6 * 1024
"""Grafana's own figure for the JavaScript of its entry points (grafana/grafana#92490)."""
ALERTS_USER = "farmwatch-alerts"
API_TOKEN = "bench-api-token-" + secrets.token_hex(8)
OPERATOR = ("ana", "ana-bench-password")
STEP_MS = 600_000
HISTORY_MS = 8 * 86_400_000
RAIN_MS = 30 * 86_400_000
RECENT_MS = 6 * 3_600_000
SCENARIO = DroughtScenario()


@dataclass
class Weight:
    """What one farm page cost the browser."""

    first_bytes: int
    cached_bytes: int
    html_decoded: int
    entries: list[dict[str, Any]]


@dataclass
class ServerTimes:
    """Per-page times of one set-up."""

    farms: int
    points: int
    client_ms: list[float]
    app_ms: list[float]


def farm_dir(directory: Path, count: int) -> dict[str, FarmConfig]:
    """The three shipped farms, or ``count`` generated ones (the shipped files, renamed)."""
    directory.mkdir(parents=True, exist_ok=True)
    shipped = sorted(FARM_FILES.glob("*.toml"))
    if count == len(shipped):
        for path in shipped:
            (directory / path.name).write_text(path.read_text())
    else:
        for i in range(count):
            source = shipped[i % len(shipped)]
            original = source.stem
            text = source.read_text().replace(f'"{original}"', f'"bench-{i:03d}"', 1)
            (directory / f"bench-{i:03d}.toml").write_text(text)
    return load_farm_dir(directory)


def _physical(sensor: Any, t_s: float) -> float:
    return SCENARIO.state_pct(sensor, t_s)


def data_lines(farm: FarmConfig, end_ms: int) -> Iterator[str]:
    """Line protocol: 8 days of 10-minute readings, 30 days of hourly rain, one status."""
    farm_id = farm.farm.id
    for sensor in farm.sensors:
        prefix = f"{sensor.kind.value},agent={sensor.agent},farm={farm_id},sensor={sensor.id}"
        if isinstance(sensor, RainGauge):
            for n, ts in enumerate(range(end_ms - RAIN_MS, end_ms, 3_600_000)):
                mm = 0.2 * ((n * 7919) % 11 == 0)
                yield f"{prefix},unit=mm raw={n},seq={n}i,value={mm} {ts}"
            continue
        for n, ts in enumerate(range(end_ms - HISTORY_MS, end_ms, STEP_MS)):
            value = round(_physical(sensor, (ts - end_ms + HISTORY_MS) / 1000), 2)
            if isinstance(sensor, WaterLevelSensor):
                vessel = sensor.vessel
                litres = vessel.volume_l(vessel.usable_height_mm * value / 100)
                yield f"{prefix},unit=% raw=0,seq={n}i,value={value},volume_l={litres:.1f} {ts}"
            elif isinstance(sensor, SoilMoistureSensor):
                yield f"{prefix},unit=% raw=0,seq={n}i,value={value} {ts}"
    for agent in farm.agents:
        yield (
            f"agent_status,agent={agent.id},farm={farm_id} clock_synced=true,dropped_total=0i,"
            f'online=true,outbox_backlog=0i,rejected_lines=0i,version="bench" {end_ms}'
        )


def load_data(
    writer: InfluxV1Writer, database: str, farms: dict[str, FarmConfig], end_ms: int
) -> int:
    """Write every farm's data and compute its aggregates; the number of points."""
    plan = RetentionPlan(database=database)
    apply(lambda statement: writer.query(statement, method="POST"), plan)
    batch: list[str] = []
    points = 0
    for farm in farms.values():
        for line in data_lines(farm, end_ms):
            batch.append(line)
            if len(batch) == 5000:
                writer.write(batch)
                points += len(batch)
                batch = []
    if batch:
        writer.write(batch)
        points += len(batch)
    backfill(
        lambda statement: writer.query(statement, method="POST"),
        plan,
        end_ms - RAIN_MS - 86_400_000,
        end_ms,
    )
    return points


def _publish(broker: MosquittoServer, user: str, password: str, topic: str, payload: bytes) -> None:
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"bench-{user}",
        protocol=paho.MQTTv5,
    )
    client.username_pw_set(user, password)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    client.publish(topic, payload, qos=1).wait_for_publish(30)
    client.disconnect()
    client.loop_stop()


def publish_recent(
    broker: MosquittoServer, passwords: dict[str, str], farms: dict[str, FarmConfig], end_ms: int
) -> None:
    """The last six hours of each farm's water levels, as its agent would send them."""
    for farm_id, farm in farms.items():
        readings: list[Reading] = []
        for sensor in farm.sensors:
            if not isinstance(sensor, WaterLevelSensor):
                continue
            for ts in range(end_ms - RECENT_MS, end_ms, STEP_MS):
                value = round(_physical(sensor, (ts - end_ms + HISTORY_MS) / 1000), 2)
                vessel = sensor.vessel
                litres = vessel.volume_l(vessel.usable_height_mm * value / 100)
                readings.append(
                    Reading(
                        len(readings),
                        sensor.id,
                        SensorKind.WATER_LEVEL,
                        ts,
                        value,
                        "%",
                        0.0,
                        round(litres, 1),
                    )
                )
        agent = farm.agents[0].id
        payload = encode_batch(ReadingBatch(1, farm_id, agent, readings))
        _publish(broker, farm_id, passwords[farm_id], readings_topic(farm_id, agent), payload)


@contextmanager
def alerting_service(workdir: Path, farms: dict[str, FarmConfig], end_ms: int) -> Iterator[str]:
    """The real alerting service with its API; yields the API's URL."""
    passwords = {u: secrets.token_hex(8) for u in (ALERTS_USER, *farms)}
    broker = MosquittoServer(data_dir=workdir / "mosquitto", users=passwords)
    broker.start()
    link = PtyLink()
    emulator = GsmModemEmulator(link)
    emulator.start()
    clock = SystemClock()
    modem = GsmModem(pyserial_factory(link.path, 115200, 0.05), clock, profile=CLASSIC_2G)
    port = free_port()
    service = AlertService(
        farms=farms,
        state_db=workdir / "alerts.sqlite3",
        consumer=make_consumer(
            MqttEndpoint(
                "127.0.0.1",
                broker.port,
                "farmwatch-alerts",
                ALERTS_USER,
                SecretStr(passwords[ALERTS_USER]),
            )
        ),
        channels=[modem],
        clock=clock,
        problems=ProblemLog(logging.getLogger("bench.alerts")),
        boot_id=current_boot_id(),
        modem=modem,
        gate=StoreLease(workdir / "alerts.sqlite3", clock, "alerts", 30.0),
        api=ApiConfig("127.0.0.1", port, SecretStr(API_TOKEN), None),
    )
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
    thread.start()
    try:
        if not service.subscribed.wait(30):
            raise RuntimeError("the alerting service did not subscribe")
        publish_recent(broker, passwords, farms, end_ms)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        thread.join(30)
        emulator.stop()
        link.close()
        broker.stop()


@contextmanager
def web_server(
    workdir: Path, influx_url: str, database: str, farm_path: Path, api_url: str, farm: str
) -> Iterator[str]:
    """``farmwatch-web`` as its own process; yields its URL."""
    users = workdir / "users.json"
    hasher = PasswordHasher()
    save_users(
        users,
        {
            OPERATOR[0]: User(
                role="operator", farms=(farm,), password_hash=hasher.hash(OPERATOR[1]), changed_ms=0
            )
        },
    )
    token = workdir / "api-token"
    token.write_text(API_TOKEN + "\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARMWATCH_")}
    env.update(
        {
            "FARMWATCH_WEB_PORT": str(port),
            "FARMWATCH_WEB_FARM_DIR": str(farm_path),
            "FARMWATCH_WEB_USERS_FILE": str(users),
            "FARMWATCH_WEB_SESSION_DB": str(workdir / "sessions.sqlite3"),
            "FARMWATCH_WEB_INFLUX_URL": influx_url,
            "FARMWATCH_WEB_INFLUX_DATABASE": database,
            "FARMWATCH_WEB_ALERTS_API_URLS": api_url,
            "FARMWATCH_WEB_ALERTS_API_TOKEN_FILE": str(token),
            "FARMWATCH_WEB_LOG_LEVEL": "WARNING",
        }
    )
    with (workdir / "web.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "collector.web.cli"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    http = urllib3.PoolManager(retries=False, timeout=2.0)
    deadline = time.monotonic() + 60
    while True:
        try:
            if http.request("GET", url + "/login").status == 200:
                break
        except urllib3.exceptions.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"farmwatch-web did not start: {(workdir / 'web.log').read_text()}")
        time.sleep(0.1)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(20)


def _session(url: str) -> tuple[urllib3.PoolManager, str]:
    http = urllib3.PoolManager(retries=False, timeout=30.0)
    page = http.request("GET", url + "/login")
    login_cookie = page.headers["Set-Cookie"].split(";", 1)[0]
    match = re.search(r'name="csrf" value="([^"]+)"', page.data.decode())
    assert match is not None
    answer = http.request(
        "POST",
        url + "/login",
        body=urlencode({"csrf": match.group(1), "username": OPERATOR[0], "password": OPERATOR[1]}),
        headers={"Cookie": login_cookie, "Content-Type": "application/x-www-form-urlencoded"},
        redirect=False,
    )
    cookie = next(c for c in answer.headers.getlist("Set-Cookie") if c.startswith("fw_session="))
    return http, cookie.split(";", 1)[0]


def page_times(url: str, farm: str, repeats: int) -> tuple[list[float], list[float]]:
    """(client ms, Server-Timing ms) of ``repeats`` farm pages after three warm-ups."""
    http, cookie = _session(url)
    client: list[float] = []
    app: list[float] = []
    for i in range(repeats + 3):
        started = time.perf_counter()
        page = http.request(
            "GET", f"{url}/farms/{farm}", headers={"Cookie": cookie, "Accept-Encoding": "gzip"}
        )
        elapsed = (time.perf_counter() - started) * 1000
        if page.status != 200:
            raise RuntimeError(f"farm page: HTTP {page.status}")
        if i >= 3:
            client.append(elapsed)
            app.append(float(page.headers["Server-Timing"].split("dur=")[1]))
    return client, app


def weight(url: str, farm: str) -> Weight:
    """The farm page's first load after the login (empty cache) and its reload, in Chromium."""
    with chromium(PHONE) as driver:
        driver.get(f"{url}/farms/{farm}")
        driver.find_element(By.ID, "username").send_keys(OPERATOR[0])
        driver.find_element(By.ID, "password").send_keys(OPERATOR[1])
        driver.find_element(By.ID, "login").click()
        deadline = time.monotonic() + 30
        while "/login" in driver.current_url and time.monotonic() < deadline:
            time.sleep(0.05)  # the click returns before the navigation it starts has finished
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.clearBrowserCache", {})
        driver.get(f"{url}/farms/{farm}")
        first = transfer_sizes(driver)
        driver.refresh()
        cached = transfer_sizes(driver)
    html = next(e for e in first if e["type"] == "navigation")
    return Weight(
        first_bytes=sum(int(e["transfer"]) for e in first),
        cached_bytes=sum(int(e["transfer"]) for e in cached),
        html_decoded=int(html["decoded"]),
        entries=first,
    )


def measure(
    stack: Stack, workdir: Path, count: int, repeats: int
) -> tuple[ServerTimes, Weight | None]:
    """Server times (and, for the shipped farms, the weight) with ``count`` farms."""
    farms = farm_dir(workdir / f"farms-{count}", count)
    database, writer = stack.new_database(f"web{count}")
    end_ms = SystemClock().now_ms() // STEP_MS * STEP_MS
    points = load_data(writer, database, farms, end_ms)
    # the README's farm among the shipped ones; a farm in the middle of the generated ones
    farm = "oax-mixteca" if "oax-mixteca" in farms else sorted(farms)[len(farms) // 2]
    with (
        alerting_service(workdir / f"alerts-{count}", farms, end_ms) as api_url,
        web_server(
            workdir / f"web-{count}",
            stack.influx.url,
            database,
            workdir / f"farms-{count}",
            api_url,
            farm,
        ) as url,
    ):
        client, app = page_times(url, farm, repeats)
        page_weight = weight(url, farm) if farm == "oax-mixteca" else None
    return ServerTimes(count, points, client, app), page_weight


def main(argv: list[str] | None = None) -> int:
    """Run alone: start InfluxDB, print the figures."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.web", description=__doc__)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="farmwatch-bench-web-") as tmp:
        workdir = Path(tmp)
        stack = Stack(workdir)
        stack.start()
        try:
            for count in (3, 100):
                (workdir / f"{count}").mkdir()
                times, page = measure(stack, workdir / f"{count}", count, args.repeats)
                print(
                    f"{count} farms ({times.points:,} points): farm page "
                    f"{statistics.median(times.client_ms):.1f} ms client, "
                    f"{statistics.median(times.app_ms):.1f} ms server"
                )
                if page is not None:
                    print(
                        f"first load {page.first_bytes / 1024:.1f} KiB "
                        f"(HTML {page.html_decoded / 1024:.1f} KiB decoded), reload "
                        f"{page.cached_bytes / 1024:.2f} KiB; Grafana entry JS "
                        f"{GRAFANA_ENTRY_JS_KIB:,.0f} KiB"
                    )
                    for entry in page.entries:
                        print(f"  {entry['type']:<10} {entry['transfer']:>6} B  {entry['name']}")
        finally:
            stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
