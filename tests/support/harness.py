"""Runs the real collector and edge agent in-process (threads) against the test servers."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from collector.quarantine import QuarantineStore
from collector.service import Collector, make_consumer, make_quarantine, make_writer
from collector.settings import CollectorSettings
from edge.agent import EdgeAgent
from edge.batching import payload_limit
from edge.clock_guard import ClockGuard, current_boot_id
from edge.committer import ReadingCommitter
from edge.outbox import Outbox
from edge.serial_source import SerialLineSource
from edge.transport import UplinkArgs
from edge.transport_mqtt import MqttTransport
from edge.urgency import Urgency, farm_watches
from farmwatch_emulators.mcu import McuEmulator
from farmwatch_emulators.pty_link import PtyLink
from farmwatch_shared.calibration.calibrate import Calibrator
from farmwatch_shared.calibration.curves import CalibrationBook
from farmwatch_shared.clock import Clock, SystemClock
from farmwatch_shared.farm.directory import load_farm_dir
from farmwatch_shared.farm.model import FarmConfig, SensorConfig, load_farm_config
from farmwatch_shared.influx import InfluxV1Writer
from farmwatch_shared.mcu_protocol import SYNC_LINE
from farmwatch_shared.mqtt import MqttEndpoint
from farmwatch_shared.problems import ProblemLog
from farmwatch_shared.serial_port import pyserial_factory
from support.paths import COLLECTOR_USER, FARM_FILES, REPO
from support.servers import Broker, Influx
from support.waiting import wait_for


def collector_settings(broker: Broker, influx: Influx, **overrides: object) -> CollectorSettings:
    """Collector settings pointing at the test broker and database."""
    values: dict[str, object] = {
        "mqtt_host": "127.0.0.1",
        "mqtt_port": broker.port,
        "mqtt_username": COLLECTOR_USER,
        "mqtt_password": broker.passwords[COLLECTOR_USER],
        "influx_url": influx.url,
        "influx_database": influx.database,
        "stats_interval_s": 1.0,
        "farm_dir": FARM_FILES,
        # one quarantine per test database (each test has its own database)
        "quarantine_path": influx.server.data_dir / f"quarantine-{influx.database}.sqlite3",
    }
    values.update(overrides)
    return CollectorSettings.model_validate(values)


@dataclass
class RunningCollector:
    """A collector on a thread."""

    collector: Collector
    stop_event: threading.Event
    thread: threading.Thread
    problems: ProblemLog
    quarantine: QuarantineStore

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(20)
        self.quarantine.close()


def start_collector(settings: CollectorSettings, clock: Clock | None = None) -> RunningCollector:
    """Create the database (v1) and run a collector until ``stop``."""
    writer = make_writer(settings)
    if isinstance(writer, InfluxV1Writer):
        writer.ensure_database()
    problems = ProblemLog(logging.getLogger("test.collector.problems"))
    consumer = make_consumer(settings)
    quarantine = make_quarantine(settings)
    collector = Collector(
        settings,
        consumer=consumer,
        writer=writer,
        quarantine=quarantine,
        farms=list(load_farm_dir(settings.farm_dir)),
        clock=clock or SystemClock(),
        problems=problems,
    )
    stop = threading.Event()
    thread = threading.Thread(target=collector.run, args=(stop,), daemon=True)
    thread.start()
    assert consumer.wait_connected(10), "collector did not connect"
    assert consumer.subscribed.wait(10), "collector did not subscribe"
    return RunningCollector(collector, stop, thread, problems, quarantine)


@dataclass
class RunningAgent:
    """An edge agent on a thread, with its emulated microcontroller."""

    agent: EdgeAgent
    transport: MqttTransport
    mcu: McuEmulator
    link: PtyLink
    outbox: Outbox
    problems: ProblemLog
    source: SerialLineSource
    stop_event: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(20)
        self.mcu.stop()
        self.outbox.close()
        self.link.close()


def farm_config(farm: str) -> FarmConfig:
    """A shipped farm file."""
    return load_farm_config(FARM_FILES / f"{farm}.toml")


def edge_committer(
    outbox: Outbox,
    clock: Clock,
    problems: ProblemLog,
    farm: FarmConfig | None = None,
    clock_trusted: Callable[[], bool] = lambda: True,
    boot_id: str = "",
) -> ReadingCommitter:
    """A committer for tests: ``farm``'s calibration records (none without a farm), the clock
    trusted unless ``clock_trusted`` says otherwise."""
    records, curves = ((), ()) if farm is None else (farm.calibrations, farm.soil_curves)
    book = CalibrationBook(records, curves)
    return ReadingCommitter(outbox, clock, problems, Calibrator(book), clock_trusted, boot_id)


def start_agent(
    broker: Broker,
    tmp_path: Path,
    farm: str = "oax-mixteca",
    *,
    clock: Clock | None = None,
    sensors: Sequence[SensorConfig] | None = None,
    link_path: Path | None = None,
    user: str | None = None,
    batch_max_readings: int = 50,
    batch_max_age_s: float = 0.1,
    compress: bool = True,
    outbox_max: int = 1_000_000,
    clock_guard: ClockGuard | None = None,
    commit_timeout_s: float = 300.0,
    max_packet_bytes: int = 256 * 1024,
    payload_version: int = 2,
    urgent_fall_pct: float | None = 10.0,
    status_interval_s: float = 5.0,
) -> RunningAgent:
    """An agent for ``farm`` reading an emulated microcontroller on a pty, wired as
    ``farmwatch-edge`` wires it (the farm's calibration records, the clock guard's trust)."""
    config = farm_config(farm)
    agent_cfg = config.agents[0]
    link = PtyLink(link_path)
    settings = agent_cfg.microcontroller
    mcu = McuEmulator(
        link, interval_s=settings.sample_interval_s, buffer_size=settings.buffer_readings
    )
    problems = ProblemLog(logging.getLogger(f"test.edge.{farm}.problems"))
    outbox = Outbox(tmp_path / f"outbox-{farm}.sqlite3", outbox_max)
    source = SerialLineSource(
        pyserial_factory(link.path, 9600), problems, name=link.path, greeting=SYNC_LINE
    )
    user = user or farm
    clock = clock or SystemClock()
    guard = clock_guard or ClockGuard(clock)
    boot_id = current_boot_id()
    committer = edge_committer(outbox, clock, problems, config, guard.trusted, boot_id)
    uplink = UplinkArgs(
        farm=farm,
        agent=agent_cfg.id,
        outbox=outbox,
        clock=clock,
        problems=problems,
        batch_max_readings=batch_max_readings,
        batch_max_age_s=batch_max_age_s,
        compress=compress,
        window=4,
        payload_limit=payload_limit(max_packet_bytes),
        payload_version=payload_version,
        urgency=Urgency(farm_watches(config, agent_cfg.id, level_fall=urgent_fall_pct)),
    )
    endpoint = MqttEndpoint(
        host="127.0.0.1",
        port=broker.port,
        client_id=f"farmwatch-edge-{farm}-{agent_cfg.id}",
        username=user,
        password=SecretStr(broker.passwords[user]),
    )
    transport = MqttTransport(endpoint, uplink, commit_timeout_s=commit_timeout_s)
    agent = EdgeAgent(
        farm=farm,
        agent=agent_cfg.id,
        sensors=sensors if sensors is not None else config.sensors_of(agent_cfg.id),
        outbox=outbox,
        source=source,
        transport=transport,
        clock=clock,
        problems=problems,
        committer=committer,
        clock_guard=guard,
        boot_id=boot_id,
        status_interval_s=status_interval_s,
        batch_max_readings=batch_max_readings,
    )
    running = RunningAgent(agent, transport, mcu, link, outbox, problems, source)
    running.thread = threading.Thread(target=agent.run, args=(running.stop_event,), daemon=True)
    mcu.start()
    running.thread.start()
    wait_for(lambda: mcu.syncs_received > 0, what="agent opened the serial port")
    return running


def _child_env(values: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(values)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@dataclass
class ChildProcess:
    """A farmwatch service run as its own process (so a test can SIGKILL it)."""

    command: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def freeze(self) -> None:
        """SIGSTOP: the process holds what it has and does nothing (until killed)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT: a frozen process runs again."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL, as a power cut or the OOM killer would."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM and wait for a clean exit."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def write_secret(path: Path, value: str) -> Path:
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path


def collector_process(
    broker: Broker, influx_url: str, database: str, tmp_path: Path
) -> ChildProcess:
    """``farmwatch-collector`` as a child process."""
    secret = write_secret(tmp_path / "collector.pw", broker.passwords[COLLECTOR_USER])
    env = _child_env(
        {
            "FARMWATCH_COLLECTOR_MQTT_HOST": "127.0.0.1",
            "FARMWATCH_COLLECTOR_MQTT_PORT": str(broker.port),
            "FARMWATCH_COLLECTOR_MQTT_USERNAME": COLLECTOR_USER,
            "FARMWATCH_COLLECTOR_MQTT_PASSWORD_FILE": str(secret),
            "FARMWATCH_COLLECTOR_INFLUX_URL": influx_url,
            "FARMWATCH_COLLECTOR_INFLUX_DATABASE": database,
            "FARMWATCH_COLLECTOR_STATS_INTERVAL_S": "1",
            "FARMWATCH_COLLECTOR_FARM_DIR": str(FARM_FILES),
            "FARMWATCH_COLLECTOR_QUARANTINE_PATH": str(tmp_path / "collector-quarantine.sqlite3"),
        }
    )
    return ChildProcess([sys.executable, "-m", "collector.cli"], env, tmp_path / "collector.log")


def agent_process(
    broker: Broker,
    farm_file: Path,
    serial_path: str,
    tmp_path: Path,
    user: str,
    **settings: str,
) -> ChildProcess:
    """``farmwatch-edge`` as a child process reading ``serial_path``."""
    secret = write_secret(tmp_path / f"{user}.pw", broker.passwords[user])
    values = {
        "FARMWATCH_EDGE_FARM_FILE": str(farm_file),
        "FARMWATCH_EDGE_SERIAL_PORT": serial_path,
        "FARMWATCH_EDGE_OUTBOX_PATH": str(tmp_path / "edge-outbox.sqlite3"),
        "FARMWATCH_EDGE_MQTT_HOST": "127.0.0.1",
        "FARMWATCH_EDGE_MQTT_PORT": str(broker.port),
        "FARMWATCH_EDGE_MQTT_USERNAME": user,
        "FARMWATCH_EDGE_MQTT_PASSWORD_FILE": str(secret),
        "FARMWATCH_EDGE_BATCH_MAX_AGE_S": "0.2",
        "FARMWATCH_EDGE_STATUS_INTERVAL_S": "2",
    }
    values.update({f"FARMWATCH_EDGE_{k.upper()}": v for k, v in settings.items()})
    return ChildProcess(
        [sys.executable, "-m", "edge.cli"], _child_env(values), tmp_path / "edge.log"
    )
