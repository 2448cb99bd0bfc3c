"""``make demo``: three emulated model farms, end to end, on real local servers.

Starts Mosquitto (shipped policy, generated credentials) and InfluxDB on free loopback ports with
data under ``var/demo/``, an emulated microcontroller per farm on a pseudo-terminal driven by a
drought scenario (one simulated minute per real second), the real edge agent per farm and the
real collector as separate processes, then prints a live view of the latest values read back
from InfluxDB. Ctrl-C stops everything it started. The farms are the repository's
``firmware_configs/`` (``--farms`` for another farm directory).
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
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from farmwatch_emulators.farm import FarmEmulator
from farmwatch_emulators.field_buses import FarmBuses
from farmwatch_emulators.mcu import McuEmulator
from farmwatch_emulators.pty_link import PtyLink
from farmwatch_emulators.scenario import DAY, HOUR
from farmwatch_local.services import REPO_ROOT, InfluxServer, MosquittoServer
from farmwatch_shared.farm.directory import load_farm_dir
from farmwatch_shared.farm.model import FarmConfig
from farmwatch_shared.farm.register_maps import BESIDE_FARM_FILE

COLLECTOR_USER = "farmwatch-collector"
DATABASE = "farmwatch"
SPEEDUP = 240.0
"""Simulated seconds per real second: a sample round every quarter of a second."""
START_S = 2.3 * 24 * 3600
"""Start the scenario shortly before its first storm, so rain shows within a minute."""


@dataclass
class DemoFarm:
    """One emulated farm: its config, microcontroller, scenario thread and agent process."""

    config: FarmConfig
    link: PtyLink
    emulator: FarmEmulator
    buses: FarmBuses
    agent: subprocess.Popen[bytes] | None = None


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


def render(url: str, farms: list[DemoFarm], started: float) -> str:
    """The live view: latest level, volume, soil moisture and rain per farm, from InfluxDB."""
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
        sim = farm.emulator.sim_s
        online = status.get(farm.config.farm.id, {}).get("online")
        state = (
            "esperando / waiting"
            if online is None
            else "en línea / online"
            if online
            else "fuera de línea / offline"
        )
        lines.append(
            f"{farm.config.farm.name} ({farm.config.farm.id}) — agente {state} — "
            f"día simulado / sim day {int(sim // DAY) + 1} {int(sim % DAY // HOUR):02d}:"
            f"{int(sim % HOUR // 60):02d}"
        )
        for sensor in farm.config.sensors:
            key = (farm.config.farm.id, sensor.id)
            row = rain.get(key) if sensor.kind == "rain" else latest.get(key)
            label = (sensor.label or sensor.id)[:38]
            if row is None:
                shown = "—"
            elif sensor.kind == "water_level":
                shown = f"{row['value']:6.1f} %  {row['volume_l'] or 0:9,.0f} L"
            elif sensor.kind == "soil_moisture":
                shown = f"{row['value']:6.1f} % VWC"
            else:
                shown = f"{row['value']:6.1f} mm (total)"
            lines.append(f"  {sensor.id:<14} {label:<38} {shown}")
        lines.append("")
    lines += [
        f"InfluxDB: {url}  base de datos / database: {DATABASE}",
        f"  curl -G '{url}/query' --data-urlencode 'db={DATABASE}' \\",
        '       --data-urlencode "q=SELECT * FROM water_level ORDER BY time DESC LIMIT 5"',
        "Ctrl-C para detener / to stop.",
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


def _start_collector(
    broker: MosquittoServer, influx: InfluxServer, password_file: Path, farms: Path, log_dir: Path
) -> subprocess.Popen[bytes]:
    env = _python_env(
        {
            "FARMWATCH_COLLECTOR_MQTT_HOST": "127.0.0.1",
            "FARMWATCH_COLLECTOR_MQTT_PORT": str(broker.port),
            "FARMWATCH_COLLECTOR_MQTT_USERNAME": COLLECTOR_USER,
            "FARMWATCH_COLLECTOR_MQTT_PASSWORD_FILE": str(password_file),
            "FARMWATCH_COLLECTOR_INFLUX_URL": influx.url,
            "FARMWATCH_COLLECTOR_INFLUX_DATABASE": DATABASE,
            "FARMWATCH_COLLECTOR_FARM_DIR": str(farms),
        }
    )
    with (log_dir / "collector.log").open("ab") as log:
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
) -> tuple[DemoFarm, subprocess.Popen[bytes]]:
    """The farm's emulators (buses serving, microcontroller and scenario not yet started) and
    its edge agent process."""
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
        speedup=SPEEDUP,
        start_s=START_S,
    )
    buses = FarmBuses(config, agent_cfg.id, emulator.scenario, emulator.sim_time)
    farm = DemoFarm(config, link, emulator, buses)
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


def _show_until_stopped(
    stop: threading.Event,
    influx_url: str,
    farms: list[DemoFarm],
    processes: list[subprocess.Popen[bytes]],
    log_dir: Path,
    duration: float | None,
    clear: bool,
) -> None:
    """The live view every 2 s until ``stop``, a process exits or ``duration`` has passed."""
    started = time.monotonic()
    while not stop.wait(2.0):
        try:
            view = render(influx_url, farms, started)
        except OSError as exc:
            view = f"InfluxDB no responde / not answering: {exc}"
        if clear:
            print("\033[2J\033[H", end="")
        print(view, flush=True)
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
) -> None:
    for farm in farms:
        farm.emulator.stop()
        farm.emulator.mcu.stop()
        farm.buses.stop()
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
    influx.stop()


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
    users = [COLLECTOR_USER, *(c.farm.id for c in farm_configs)]
    password_files = {user: _write_secret(data / "secrets", user) for user in users}
    broker = MosquittoServer(
        data_dir=data / "mosquitto",
        users={u: p.read_text().strip() for u, p in password_files.items()},
    )
    influx = InfluxServer(data_dir=data / "influxdb")
    processes: list[subprocess.Popen[bytes]] = []
    farms: list[DemoFarm] = []
    log_dir = data / "logs"
    log_dir.mkdir()
    try:
        print("Iniciando / starting Mosquitto e InfluxDB…", flush=True)
        broker.start()
        influx.start()
        processes.append(
            _start_collector(broker, influx, password_files[COLLECTOR_USER], args.farms, log_dir)
        )
        for config in farm_configs:
            farm, agent = _start_farm(
                config, broker, password_files[config.farm.id], args.farms, data, log_dir
            )
            processes.append(agent)
            farm.emulator.mcu.start()
            farm.emulator.start()
            farms.append(farm)
        _show_until_stopped(
            stop, influx.url, farms, processes, log_dir, args.duration, clear=not args.no_clear
        )
        return 0
    finally:
        print("\nDeteniendo / stopping…", flush=True)
        _stop_all(farms, processes, broker, influx)
        print(f"Listo / done. Datos / data: {data}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
