"""``make demo``: three emulated model farms, end to end, on real local servers.

Starts Mosquitto (shipped policy, generated credentials) and InfluxDB (with its retention
policies, ``farmwatch-influx-setup``) on free loopback ports with data under ``var/demo/``, the
real collector, the real alerting service (with the emulated GSM modem on a pseudo-terminal and
its HTTP API on) and the real web application (``farmwatch-web``, with a demo account printed on
screen) as separate processes, an emulated microcontroller per farm on a pseudo-terminal driven
by a drought scenario (one simulated minute every quarter of a second), an emulated LoRaWAN
network server publishing the uplinks of the farms' LoRaWAN sensors to a second Mosquitto (its
broker) and the real edge agent per farm, then prints a live view of the latest values read back
from InfluxDB, the days of water left and the alerts from the alerting API, and every SMS
through the emulated modem. In the first minutes a trough's float valve sticks: the trough alert
fires, the farmer's emulated phone answers ``OK n`` and the alert resolves after the refill.
Ctrl-C stops everything it started. The farms are the repository's ``firmware_configs/``
(``--farms`` for another farm directory).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from farmwatch_emulators.farm import FarmEmulator
from farmwatch_emulators.field_buses import FarmBuses
from farmwatch_emulators.gsm_modem import GsmModemEmulator
from farmwatch_emulators.mcu import McuEmulator
from farmwatch_emulators.pty_link import PtyLink
from farmwatch_emulators.scenario import DAY, HOUR, DroughtScenario, ValveFault
from farmwatch_local.demo_alerts import AlertsApi, FarmerPhones, SmsLine, alert_farm_text
from farmwatch_local.demo_lorawan import FarmRadio, NetworkServer, lorawan_line
from farmwatch_local.demo_web import WebSetup, WebStartError, start_web
from farmwatch_local.services import REPO_ROOT, InfluxServer, MosquittoServer, free_port
from farmwatch_shared.farm.alert_rules import LevelBelow
from farmwatch_shared.farm.directory import load_farm_dir
from farmwatch_shared.farm.model import FarmConfig, SensorConfig
from farmwatch_shared.farm.register_maps import BESIDE_FARM_FILE

COLLECTOR_USER = "farmwatch-collector"
ALERTS_USER = "farmwatch-alerts"
DATABASE = "farmwatch"
SPEEDUP = 240.0
"""Simulated seconds per real second: a sample round every quarter of a second."""
START_S = 2.3 * 24 * 3600
"""Start the scenario shortly before its first storm, so rain shows within a minute."""
STUCK_VALVE = ("oax-mixteca", "trough-north")
"""The trough whose float valve sticks (or the first one with a level alert)."""
STUCK_FROM_S = START_S + 0.25 * HOUR
STUCK_UNTIL_S = START_S + 4.9 * HOUR
"""The valve is repaired 73 real seconds in (just after the trough's usual refill)."""
FARMER_REPLY_S = 5.0
"""Real seconds the farmer's phone takes to answer an alert with OK n."""
SMS_SHOWN = 8


@dataclass
class DemoFarm:
    """One emulated farm: its config, microcontroller, scenario thread, LoRaWAN devices (if
    it has any) and agent process."""

    config: FarmConfig
    link: PtyLink
    emulator: FarmEmulator
    buses: FarmBuses
    radio: FarmRadio | None = None
    agent: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the microcontroller, the scenario and the LoRaWAN uplinks."""
        self.emulator.mcu.start()
        self.emulator.start()
        if self.radio is not None:
            self.radio.devices.start()

    def stop(self) -> None:
        """Stop the emulators (not the agent)."""
        self.emulator.stop()
        self.emulator.mcu.stop()
        self.buses.stop()
        if self.radio is not None:
            self.radio.stop()


def _write_secret(directory: Path, user: str) -> Path:
    path = directory / f"{user}.password"
    path.write_text(secrets.token_urlsafe(18) + "\n")
    path.chmod(0o600)
    return path


def _python_env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _query(url: str, influxql: str) -> list[dict[str, Any]]:
    params = urllib.parse.urlencode({"db": DATABASE, "q": influxql, "epoch": "ms"})
    with urllib.request.urlopen(f"{url}/query?{params}", timeout=5) as response:
        answer = json.load(response)
    rows: list[dict[str, Any]] = []
    for result in answer.get("results", []):
        for series in result.get("series", []):
            for values in series["values"]:
                row = dict(zip(series["columns"], values, strict=True))
                row.update(series.get("tags", {}))
                rows.append(row)
    return rows


def _mask(phone: str) -> str:
    return "…" + phone[-4:]


def _days(view: Mapping[str, Any] | None, sensor: str) -> str:
    """Days of water left from the alerting API's forecast, in simulated days."""
    if view is None:
        return ""
    forecast = view["forecasts"].get(sensor)
    if forecast is None:
        return "  días/days: sin tendencia aún / no trend yet"
    if forecast["days_left"] is None:
        return "  no baja / not falling"
    return f"  {forecast['days_left'] * SPEEDUP:5.1f} d de agua / water"


def _sensor_line(sensor: SensorConfig, row: Mapping[str, Any] | None, days: str) -> str:
    label = (sensor.label or sensor.id)[:38]
    if row is None:
        shown = "—"
    elif sensor.kind == "water_level":
        shown = f"{row['value']:6.1f} %  {row['volume_l'] or 0:9,.0f} L{days}"
    elif sensor.kind == "soil_moisture":
        shown = f"{row['value']:6.1f} % VWC"
    else:
        shown = f"{row['value']:6.1f} mm (total)"
    return f"  {sensor.id:<14} {label:<38} {shown}"


def _alert_lines(view: Mapping[str, Any] | None) -> list[str]:
    """The farm's open incidents and last SMS, from the alerting API."""
    if view is None:
        return ["  alertas / alerts: la API no responde aún / API not answering yet"]
    lines = []
    for incident in view["incidents"]:
        acked = (
            f"recibida por / acked by {incident['acked_by']} ({incident['acked_via']})"
            if incident["acked_via"] is not None
            else "sin respuesta / not acknowledged"
        )
        lines.append(f"  ALERTA #{incident['id']} {incident['text_es']}: {acked}")
    last = view["last_sms"]
    if last is not None:
        lines.append(f"  último SMS / last SMS ({last['to']}, {last['state']}): {last['text']}")
    return lines


def _farm_lines(
    farm: DemoFarm,
    latest: Mapping[tuple[str, str], Mapping[str, Any]],
    rain: Mapping[tuple[str, str], Mapping[str, Any]],
    online: bool | None,
    view: Mapping[str, Any] | None,
) -> list[str]:
    sim = farm.emulator.sim_s
    state = (
        "esperando / waiting"
        if online is None
        else "en línea / online"
        if online
        else "fuera de línea / offline"
    )
    lines = [
        f"{farm.config.farm.name} ({farm.config.farm.id}) — agente {state} — "
        f"día simulado / sim day {int(sim // DAY) + 1} {int(sim % DAY // HOUR):02d}:"
        f"{int(sim % HOUR // 60):02d}"
    ]
    for sensor in farm.config.sensors:
        key = (farm.config.farm.id, sensor.id)
        row = rain.get(key) if sensor.kind == "rain" else latest.get(key)
        lines.append(_sensor_line(sensor, row, _days(view, sensor.id)))
    return lines + _alert_lines(view)


def sms_lines(sms: Sequence[SmsLine]) -> list[str]:
    """The last SMS through the emulated modem: what it was given to send (decoded from the
    PDUs it received) and what the phones answered."""
    lines = ["SMS por el módem GSM emulado / through the emulated GSM modem:"]
    for line in sms[-SMS_SHOWN:]:
        arrow = "módem → " if line.outgoing else "módem ← "
        lines.append(f"  {line.at_s:5.0f} s  {arrow}{_mask(line.phone)}  {line.text}")
        lines.append(f"           ({line.detail})")
    if not sms:
        lines.append("  (ninguno aún / none yet)")
    return lines


def render(
    url: str,
    farms: list[DemoFarm],
    started: float,
    views: Mapping[str, Mapping[str, Any] | None],
    sms: Sequence[SmsLine],
) -> str:
    """The live view: latest level, volume, soil moisture and rain per farm from InfluxDB;
    days of water left, alerts and the last SMS per farm from the alerting API (``views``,
    by farm id); every SMS through the emulated modem (``sms``)."""
    latest = {
        (r["farm"], r["sensor"]): r
        for r in _query(
            url,
            "SELECT last(value) AS value, last(volume_l) AS volume_l FROM water_level, "
            "soil_moisture GROUP BY farm, sensor",
        )
    }
    rain = {
        (r["farm"], r["sensor"]): r
        for r in _query(url, "SELECT sum(value) AS value FROM rain GROUP BY farm, sensor")
    }
    status = {
        r["farm"]: r
        for r in _query(url, "SELECT last(online) AS online FROM agent_status GROUP BY farm")
    }
    lines = [
        f"farmwatch demo — {time.strftime('%H:%M:%S')} — "
        f"{int(time.monotonic() - started)} s reales / real",
        "",
    ]
    for farm in farms:
        farm_id = farm.config.farm.id
        online = status.get(farm_id, {}).get("online")
        lines += _farm_lines(farm, latest, rain, online, views.get(farm_id))
        lines.append("")
    lines += sms_lines(sms)
    lines += [
        "",
        f"InfluxDB: {url}  base de datos / database: {DATABASE}",
        f"  curl -G '{url}/query' --data-urlencode 'db={DATABASE}' \\",
        '       --data-urlencode "q=SELECT * FROM water_level ORDER BY time DESC LIMIT 5"',
    ]
    return "\n".join(lines)


def _with_bus_ports(
    config: FarmConfig, agent_id: str, ports: dict[str, str], farms: Path, out: Path
) -> Path:
    """The farm file of ``farms`` with each field bus's device path replaced by its emulator's
    tty, written to ``out`` (with the register maps beside it, if ``farms`` has its own)."""
    path = farms / f"{config.farm.id}.toml"
    text = path.read_text(encoding="utf-8")
    for bus in config.buses_of(agent_id):
        text = text.replace(f'port = "{bus.port}"', f'port = "{ports[bus.id]}"', 1)
    out.mkdir(parents=True, exist_ok=True)
    if (farms / BESIDE_FARM_FILE).is_dir() and not (out / BESIDE_FARM_FILE).exists():
        shutil.copytree(farms / BESIDE_FARM_FILE, out / BESIDE_FARM_FILE)
    derived = out / f"{config.farm.id}.toml"
    derived.write_text(text, encoding="utf-8")
    return derived


def _collector_env(
    broker: MosquittoServer, influx: InfluxServer, password_file: Path, farms: Path, log_dir: Path
) -> dict[str, str]:
    return _python_env(
        {
            "FARMWATCH_COLLECTOR_MQTT_HOST": "127.0.0.1",
            "FARMWATCH_COLLECTOR_MQTT_PORT": str(broker.port),
            "FARMWATCH_COLLECTOR_MQTT_USERNAME": COLLECTOR_USER,
            "FARMWATCH_COLLECTOR_MQTT_PASSWORD_FILE": str(password_file),
            "FARMWATCH_COLLECTOR_INFLUX_URL": influx.url,
            "FARMWATCH_COLLECTOR_INFLUX_DATABASE": DATABASE,
            "FARMWATCH_COLLECTOR_FARM_DIR": str(farms),
            "FARMWATCH_COLLECTOR_QUARANTINE_PATH": str(log_dir.parent / "quarantine.sqlite3"),
        }
    )


def _start_collector(env: dict[str, str], log_dir: Path) -> subprocess.Popen[bytes]:
    """``farmwatch-influx-setup`` (the retention policies and continuous queries, as the
    collector's service runs it first on a server), then the collector."""
    with (log_dir / "collector.log").open("ab") as log:
        subprocess.run(
            [sys.executable, "-m", "collector.influx_setup"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=120,
            check=True,
        )
        return subprocess.Popen(
            [sys.executable, "-m", "collector.cli"], env=env, stdout=log, stderr=subprocess.STDOUT
        )


def _start_farm(
    config: FarmConfig,
    broker: MosquittoServer,
    password_file: Path,
    farms: Path,
    data: Path,
    log_dir: Path,
    scenario: DroughtScenario,
    network_server: NetworkServer | None,
) -> tuple[DemoFarm, subprocess.Popen[bytes]]:
    """The farm's emulators following ``scenario`` (buses serving, microcontroller, scenario
    and LoRaWAN uplinks not yet started) and its edge agent process, subscribed to
    ``network_server`` if the farm has LoRaWAN devices."""
    agent_cfg = config.agents[0]
    link = PtyLink(data / "dev" / f"{config.farm.id}-mcu")
    mcu_settings = agent_cfg.microcontroller
    mcu = McuEmulator(
        link,
        interval_s=mcu_settings.sample_interval_s,
        buffer_size=mcu_settings.buffer_readings,
    )
    emulator = FarmEmulator(
        mcu,
        [s for s in config.sensors_of(agent_cfg.id) if s.source is None],
        scenario,
        speedup=SPEEDUP,
        start_s=START_S,
    )
    buses = FarmBuses(config, agent_cfg.id, emulator.scenario, emulator.sim_time)
    radio = (
        network_server.farm_radio(
            config, agent_cfg.id, emulator.scenario, emulator.sim_time, SPEEDUP
        )
        if network_server is not None
        else None
    )
    farm = DemoFarm(config, link, emulator, buses, radio)
    farm_file = _with_bus_ports(config, agent_cfg.id, buses.ports, farms, data / "farms")
    env = _python_env(
        {
            "FARMWATCH_EDGE_FARM_FILE": str(farm_file),
            "FARMWATCH_EDGE_SERIAL_PORT": link.path,
            "FARMWATCH_EDGE_OUTBOX_PATH": str(data / config.farm.id / "outbox.sqlite3"),
            "FARMWATCH_EDGE_MQTT_HOST": "127.0.0.1",
            "FARMWATCH_EDGE_MQTT_PORT": str(broker.port),
            "FARMWATCH_EDGE_MQTT_USERNAME": config.farm.id,
            "FARMWATCH_EDGE_MQTT_PASSWORD_FILE": str(password_file),
            "FARMWATCH_EDGE_BATCH_MAX_AGE_S": "2",
            "FARMWATCH_EDGE_STATUS_INTERVAL_S": "10",
            **(network_server.agent_env() if network_server and radio else {}),
        }
    )
    buses.start()
    with (log_dir / f"edge-{config.farm.id}.log").open("ab") as log:
        farm.agent = subprocess.Popen(
            [sys.executable, "-m", "edge.cli"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return farm, farm.agent


def _start_alerts(
    broker: MosquittoServer,
    influx: InfluxServer,
    password_file: Path,
    configs: list[FarmConfig],
    farms: Path,
    data: Path,
    modem: PtyLink,
) -> tuple[subprocess.Popen[bytes], AlertsApi, Path]:
    """The alerting service with the farm files' rules at demo speed, texting through the
    emulated modem, its API on a free port with a generated token."""
    alert_farms = data / "alert-farms"
    alert_farms.mkdir()
    if (farms / BESIDE_FARM_FILE).is_dir():
        shutil.copytree(farms / BESIDE_FARM_FILE, alert_farms / BESIDE_FARM_FILE)
    for config in configs:
        text = (farms / f"{config.farm.id}.toml").read_text(encoding="utf-8")
        (alert_farms / f"{config.farm.id}.toml").write_text(
            alert_farm_text(text, config, SPEEDUP), encoding="utf-8"
        )
    token_file = data / "secrets" / "alerts-api.token"
    token = secrets.token_urlsafe(32)
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    port = free_port()
    env = _python_env(
        {
            "FARMWATCH_ALERTS_FARM_DIR": str(alert_farms),
            "FARMWATCH_ALERTS_STATE_DB": str(data / "alerts" / "alerts.sqlite3"),
            "FARMWATCH_ALERTS_MQTT_HOST": "127.0.0.1",
            "FARMWATCH_ALERTS_MQTT_PORT": str(broker.port),
            "FARMWATCH_ALERTS_MQTT_USERNAME": ALERTS_USER,
            "FARMWATCH_ALERTS_MQTT_PASSWORD_FILE": str(password_file),
            "FARMWATCH_ALERTS_MODEM_PORT": modem.path,
            "FARMWATCH_ALERTS_INFLUX_URL": influx.url,
            "FARMWATCH_ALERTS_INFLUX_DATABASE": DATABASE,
            "FARMWATCH_ALERTS_API_LISTEN": f"127.0.0.1:{port}",
            "FARMWATCH_ALERTS_API_TOKEN_FILE": str(token_file),
        }
    )
    with (data / "logs" / "alerts.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "collector.alerts.cli"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return process, AlertsApi(f"http://127.0.0.1:{port}", token), token_file


def _stuck_valve(configs: list[FarmConfig]) -> tuple[str, ValveFault] | None:
    """The farm and the fault of the trough whose valve sticks: :data:`STUCK_VALVE` if that farm
    is shown, else the first water sensor with a level alert."""
    candidates = [
        (config.farm.id, rule.sensor)
        for config in configs
        for rule in config.alerts
        if isinstance(rule, LevelBelow)
    ]
    if not candidates:
        return None
    farm_id, sensor = STUCK_VALVE if STUCK_VALVE in candidates else candidates[0]
    return farm_id, ValveFault(sensor, STUCK_FROM_S, STUCK_UNTIL_S)


@dataclass(frozen=True)
class DemoContext:
    """What the demo's services are, for a further service to join them."""

    broker: MosquittoServer
    influx: InfluxServer
    alerts_api: AlertsApi
    alerts_token_file: Path
    farms: Path
    """The farm directory (as given)."""
    data: Path
    log_dir: Path
    secrets: Path


def start_further_services(context: DemoContext) -> tuple[list[subprocess.Popen[bytes]], list[str]]:
    """Where a further server-side service joins the demo: the web application
    (``farmwatch-web``) on a free port, reading InfluxDB (``context.influx.url``) and the
    alerting API (``context.alerts_api.url`` with the token in ``context.alerts_token_file``),
    with a demo account for every farm. Returns its processes (watched and stopped with the
    others) and the lines the view prints about it (its URL and the demo account)."""
    setup = WebSetup(
        farm_dir=context.farms,
        farm_ids=tuple(load_farm_dir(context.farms)),
        influx_url=context.influx.url,
        database=DATABASE,
        alerts_api_url=context.alerts_api.url,
        alerts_token_file=context.alerts_token_file,
        data=context.data,
        secrets=context.secrets,
        log_dir=context.log_dir,
    )
    web = start_web(setup, _python_env({}), free_port())
    return [web.process], web.lines()


def _show_until_stopped(
    stop: threading.Event,
    influx_url: str,
    farms: list[DemoFarm],
    processes: list[subprocess.Popen[bytes]],
    log_dir: Path,
    duration: float | None,
    clear: bool,
    started: float,
    api: AlertsApi,
    phones: FarmerPhones,
    footer: list[str],
) -> None:
    """The live view every 2 s until ``stop``, a process exits or ``duration`` has passed."""
    while not stop.wait(2.0):
        views = {farm.config.farm.id: api.farm(farm.config.farm.id) for farm in farms}
        try:
            view = render(influx_url, farms, started, views, phones.lines())
        except OSError as exc:
            view = f"InfluxDB no responde / not answering: {exc}"
        if clear:
            print("\033[2J\033[H", end="")
        print("\n".join([view, *footer]), flush=True)
        for process in processes:
            if process.poll() is not None:
                print(
                    f"un proceso terminó / a process exited: {process.args!r} → "
                    f"{process.returncode} (logs: {log_dir})",
                    flush=True,
                )
                stop.set()
        if duration is not None and time.monotonic() - started >= duration:
            stop.set()


def _stop_all(
    farms: list[DemoFarm],
    processes: list[subprocess.Popen[bytes]],
    broker: MosquittoServer,
    influx: InfluxServer,
    network_server: NetworkServer | None,
) -> None:
    for farm in farms:
        farm.stop()
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
    for farm in farms:
        farm.link.close()
    broker.stop()
    if network_server is not None:
        network_server.stop()
    influx.stop()


def _footer(api: AlertsApi, token_file: Path, first_farm: str) -> list[str]:
    return [
        f"API de alertas / alerts API: {api.url}  (token: {token_file})",
        f'  curl -H "Authorization: Bearer $(cat {token_file})" {api.url}/v1/farms/{first_farm}',
    ]


def main(argv: list[str] | None = None) -> int:
    """Run the demo until Ctrl-C (or ``--duration`` seconds)."""
    parser = argparse.ArgumentParser(prog="farmwatch-demo", description=__doc__)
    parser.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    parser.add_argument("--no-clear", action="store_true", help="do not clear the screen")
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT / "var" / "demo")
    parser.add_argument(
        "--farms", type=Path, default=REPO_ROOT / "firmware_configs", help="farm directory"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    data: Path = args.data_dir
    shutil.rmtree(data, ignore_errors=True)
    (data / "secrets").mkdir(parents=True)
    (data / "dev").mkdir()
    farm_configs = list(load_farm_dir(args.farms).values())
    users = [COLLECTOR_USER, ALERTS_USER, *(c.farm.id for c in farm_configs)]
    password_files = {user: _write_secret(data / "secrets", user) for user in users}
    broker = MosquittoServer(
        data_dir=data / "mosquitto",
        users={u: p.read_text().strip() for u, p in password_files.items()},
    )
    influx = InfluxServer(data_dir=data / "influxdb")
    modem_link = PtyLink(data / "dev" / "gsm-modem")
    modem = GsmModemEmulator(modem_link)
    phones = FarmerPhones(
        modem,
        [c.phone for f in farm_configs for c in f.contacts if c.role == "primary"],
        started,
        FARMER_REPLY_S,
    )
    processes: list[subprocess.Popen[bytes]] = []
    farms: list[DemoFarm] = []
    log_dir = data / "logs"
    log_dir.mkdir()
    fault = _stuck_valve(farm_configs)
    network_server = (
        NetworkServer(data / "network-server", data / "secrets")
        if any(c.lorawan_devices for c in farm_configs)
        else None
    )
    try:
        print("Iniciando / starting Mosquitto e InfluxDB…", flush=True)
        broker.start()
        influx.start()
        if network_server is not None:
            network_server.start()
        collector_env = _collector_env(
            broker, influx, password_files[COLLECTOR_USER], args.farms, log_dir
        )
        processes.append(_start_collector(collector_env, log_dir))
        modem.start()
        alerts, api, token_file = _start_alerts(
            broker, influx, password_files[ALERTS_USER], farm_configs, args.farms, data, modem_link
        )
        processes.append(alerts)
        print("Iniciando / starting farmwatch-alerts…", flush=True)
        first = fault[0] if fault is not None else farm_configs[0].farm.id
        api.wait_ready(first, 60.0, lambda: alerts.poll() is None)
        phones.start()
        for config in farm_configs:
            faults = (fault[1],) if fault is not None and fault[0] == config.farm.id else ()
            farm, agent = _start_farm(
                config,
                broker,
                password_files[config.farm.id],
                args.farms,
                data,
                log_dir,
                DroughtScenario(valve_faults=faults),
                network_server,
            )
            processes.append(agent)
            farms.append(farm)
            farm.start()
        context = DemoContext(
            broker, influx, api, token_file, args.farms, data, log_dir, data / "secrets"
        )
        try:
            further, further_lines = start_further_services(context)
        except WebStartError as exc:
            print(f"farmwatch-web: {exc}", file=sys.stderr, flush=True)
            return 1
        processes += further
        footer = [
            *_footer(api, token_file, first),
            *lorawan_line(network_server, [f.radio for f in farms if f.radio is not None]),
            *further_lines,
            f"Registros / logs: {log_dir}",
            "Ctrl-C para detener / to stop.",
        ]
        _show_until_stopped(
            stop,
            influx.url,
            farms,
            processes,
            log_dir,
            args.duration,
            not args.no_clear,
            started,
            api,
            phones,
            footer,
        )
        return 0
    finally:
        print("\nDeteniendo / stopping…", flush=True)
        phones.stop()
        _stop_all(farms, processes, broker, influx, network_server)
        modem.stop()
        modem_link.close()
        print(f"Listo / done. Datos / data: {data}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
