"""Benchmarks 4–6: the edge agent's footprint, its uplink bytes and its outbox drain rate."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from pydantic import SecretStr

from benchmarks.common import (
    COLLECTOR_USER,
    FARM_FILES,
    Stack,
    close,
    mqtt_env,
    subscribe,
    wait_until,
)
from edge.agent import EdgeAgent
from edge.batching import payload_limit
from edge.clock_guard import ClockGuard, current_boot_id
from edge.committer import ReadingCommitter
from edge.outbox import Outbox
from edge.serial_source import SerialLineSource
from edge.settings import EdgeSettings
from edge.transport import UplinkArgs
from edge.transport_mqtt import MqttTransport
from edge.urgency import Urgency, farm_watches
from farmwatch_emulators.farm import FarmEmulator
from farmwatch_emulators.mcu import McuEmulator
from farmwatch_emulators.pty_link import PtyLink
from farmwatch_emulators.scenario import DroughtScenario, raw_for
from farmwatch_local.install import Installed
from farmwatch_shared.calibration.calibrate import Calibrator, SensorState
from farmwatch_shared.calibration.curves import CalibrationBook
from farmwatch_shared.clock import Clock, SystemClock
from farmwatch_shared.contract import (
    UNITS,
    ContractError,
    Reading,
    ReadingBatch,
    decode_batch,
    encode_batch,
    readings_topic,
)
from farmwatch_shared.farm.model import FarmConfig, load_farm_config
from farmwatch_shared.mcu_protocol import SYNC_LINE
from farmwatch_shared.mqtt import MqttEndpoint
from farmwatch_shared.problems import ProblemLog
from farmwatch_shared.serial_port import pyserial_factory

FARM = "oax-mixteca"
FARM_FILE = FARM_FILES / f"{FARM}.toml"
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
TICKS = os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    """Resident set size of a process (VmRSS), KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_s(pid: int) -> float:
    """User + system CPU time a process used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


class ReadingCounter:
    """A subscriber (collector user) counting the readings the broker delivers for one farm."""

    def __init__(self, stack: Stack) -> None:
        self.readings = 0
        self.status_online = threading.Event()
        self._client = stack.endpoint.client(
            COLLECTOR_USER, f"bench-count-{secrets.token_hex(4)}", on_message=self._on_message
        )
        subscribe(self._client, f"farmwatch/v1/{FARM}/#")

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        if message.topic.endswith("/status"):
            if b'"online"' in message.payload:
                self.status_online.set()
            return
        with contextlib.suppress(ContractError):  # not ours to judge: the count stays short
            self.readings += len(decode_batch(bytes(message.payload)).readings)

    def close(self) -> None:
        """Disconnect."""
        close(self._client)


@dataclass
class AgentFootprint:
    """Figures of one edge-agent process run."""

    serial_ready_s: float
    online_s: float
    rss_start_kib: int
    rss_hour_kib: int
    rss_end_kib: int
    cpu_per_reading_ms: float
    readings: int


def agent_footprint(
    stack: Stack, workdir: Path, installed: Installed, hours: int = 25
) -> AgentFootprint:
    """Run the installed ``farmwatch-edge`` (the wheel in a fresh virtualenv, as a Pi runs it)
    against an emulated microcontroller on a pty, shipped settings."""
    farm = load_farm_config(FARM_FILE)
    agent_cfg = farm.agents[0]
    sensors = farm.sensors_of(agent_cfg.id)
    run_dir = workdir / f"edge-{secrets.token_hex(3)}"
    run_dir.mkdir(parents=True)
    secret = run_dir / "mqtt-password"
    secret.write_text(stack.passwords[FARM])
    secret.chmod(0o600)
    link = PtyLink()
    mcu = McuEmulator(link, interval_s=agent_cfg.microcontroller.sample_interval_s)
    emulator = FarmEmulator(mcu, sensors, DroughtScenario())
    counter = ReadingCounter(stack)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("FARMWATCH_", "PYTHON"))},
        "FARMWATCH_EDGE_FARM_FILE": str(FARM_FILE),
        "FARMWATCH_EDGE_SERIAL_PORT": link.path,
        **mqtt_env(stack.tls_port, stack.ca_file, FARM, secret),  # TLS, as deployed
        "FARMWATCH_EDGE_OUTBOX_PATH": str(run_dir / "outbox.sqlite3"),
        "FARMWATCH_EDGE_LOG_LEVEL": "WARNING",
    }
    program = installed.bin("farmwatch-edge")
    mcu.start()
    started = time.perf_counter()
    process = subprocess.Popen([str(program)], env=env, stderr=(run_dir / "agent.log").open("wb"))
    try:
        wait_until(lambda: mcu.syncs_received > 0, 60, "agent opened the serial port")
        serial_ready = time.perf_counter() - started
        wait_until(counter.status_online.is_set, 60, "agent online on the broker")
        online = time.perf_counter() - started
        time.sleep(0.5)
        rss_start = rss_kib(process.pid)
        cpu_before = cpu_s(process.pid)
        per_hour = 3600 // mcu.interval_s
        fed = 0
        hour_rss = 0
        for sample in range(hours * per_hour):
            emulator.sample_all()
            emulator.sim_s += mcu.interval_s
            fed += len(sensors)
            if mcu.unacknowledged > 200:
                wait_until(lambda: mcu.unacknowledged < 50, 60, "agent reads the serial line")
            if sample + 1 == per_hour:
                wait_until(lambda: mcu.unacknowledged == 0, 60, "hour recorded")
                hour_rss = rss_kib(process.pid)
        # batches of 200 leave at once (after the few readings sent at start, edge/urgency.py);
        # the partial last batch waits for batch_max_age_s
        wait_until(lambda: counter.readings > fed - 200, 120, "readings delivered")
        cpu_used = cpu_s(process.pid) - cpu_before
        rss_end = rss_kib(process.pid)
    finally:
        process.terminate()
        process.wait(20)
        counter.close()
        mcu.stop()
        link.close()
    return AgentFootprint(
        serial_ready_s=serial_ready,
        online_s=online,
        rss_start_kib=rss_start,
        rss_hour_kib=hour_rss,
        rss_end_kib=rss_end,
        cpu_per_reading_ms=cpu_used / fed * 1000,
        readings=fed,
    )


_IDLE = "import time; print('ready', flush=True); time.sleep(30)"


def bare_interpreter(installed: Installed) -> tuple[float, int]:
    """Baseline: start-up time (s) and RSS (KiB) of a bare Python interpreter of the install."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [
            str(installed.bin("python")),
            "-c",
            "import time; print('ready', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    process.stdout.readline()
    elapsed = time.perf_counter() - started
    rss = rss_kib(process.pid)
    process.terminate()
    process.wait()
    return elapsed, rss


def fill_outbox(path: Path, days: float = 1.0) -> int:
    """A simulated day offline: every sensor of the farm's agent each minute, calibrated by the
    ``Calibrator`` as the committer does, committed with ``Outbox.add``. Returns the number of
    readings."""
    farm = load_farm_config(FARM_FILE)
    agent_cfg = farm.agents[0]
    sensors = farm.sensors_of(agent_cfg.id)
    interval_s = agent_cfg.microcontroller.sample_interval_s
    scenario = DroughtScenario()
    calibrator = Calibrator(CalibrationBook(farm.calibrations, farm.soil_curves))
    outbox = Outbox(path, 2_000_000)
    start_ms = SystemClock().now_ms() - int(days * 86_400_000)
    states = {sensor.id: SensorState() for sensor in sensors}
    count = 0
    for step in range(int(days * 86_400 / interval_s)):
        t = step * interval_s
        ts = start_ms + t * 1000
        for sensor in sensors:
            raw = raw_for(sensor, scenario.state_pct(sensor, t))
            calibrated = calibrator.calibrate(sensor, raw, ts, states[sensor.id])
            states[sensor.id] = SensorState(ts, calibrated.counter)
            volume = calibrated.volume_l
            reading = Reading(
                seq=0,
                sensor=sensor.id,
                kind=sensor.kind,
                ts=ts,
                value=round(calibrated.value, 4),
                unit=UNITS[sensor.kind],
                raw=raw,
                volume_l=None if volume is None else round(volume, 2),
            )
            outbox.add(reading)
            count += 1
    outbox.close()
    return count


def shipped_agent(
    farm: FarmConfig,
    agent_id: str,
    outbox: Outbox,
    source: SerialLineSource,
    endpoint: MqttEndpoint,
    clock: Clock,
    problems: ProblemLog,
    batch_max_age_s: float | None = None,
) -> tuple[EdgeAgent, MqttTransport]:
    """An in-process EdgeAgent on MQTT wired as ``farmwatch-edge`` wires it, with the shipped
    settings (the ``EdgeSettings`` defaults; ``batch_max_age_s`` overrides the batching age),
    and its transport."""
    shipped = EdgeSettings.model_construct()  # the defaults, no environment
    guard = ClockGuard(clock)
    boot_id = current_boot_id()
    calibrator = Calibrator(CalibrationBook(farm.calibrations, farm.soil_curves))
    uplink = UplinkArgs(
        farm=farm.farm.id,
        agent=agent_id,
        outbox=outbox,
        clock=clock,
        problems=problems,
        batch_max_readings=shipped.batch_max_readings,
        batch_max_age_s=shipped.batch_max_age_s if batch_max_age_s is None else batch_max_age_s,
        compress=shipped.compress,
        window=shipped.inflight_window,
        payload_limit=payload_limit(shipped.max_packet_bytes),
        payload_version=shipped.payload_version,
        urgency=Urgency(farm_watches(farm, agent_id, level_fall=shipped.urgent_fall_pct)),
    )
    transport = MqttTransport(endpoint, uplink, commit_timeout_s=shipped.commit_timeout_s)
    agent = EdgeAgent(
        farm=farm.farm.id,
        agent=agent_id,
        sensors=farm.sensors_of(agent_id),
        outbox=outbox,
        source=source,
        transport=transport,
        clock=clock,
        problems=problems,
        committer=ReadingCommitter(outbox, clock, problems, calibrator, guard.trusted, boot_id),
        clock_guard=guard,
        boot_id=boot_id,
        status_interval_s=shipped.status_interval_s,
        batch_max_readings=shipped.batch_max_readings,
    )
    return agent, transport


@dataclass
class DrainRun:
    """One outbox drain by the real EdgeAgent with the shipped uplink settings."""

    readings_per_s: float
    readings: int
    messages: int
    payload_bytes: int


def drain_outbox(stack: Stack, template: Path, workdir: Path) -> DrainRun:
    """Copy the filled outbox, start the agent, time until the broker acknowledged everything."""
    run_dir = workdir / f"drain-{secrets.token_hex(3)}"
    run_dir.mkdir(parents=True)
    path = run_dir / "outbox.sqlite3"
    shutil.copy(template, path)
    farm = load_farm_config(FARM_FILE)
    agent_cfg = farm.agents[0]
    outbox = Outbox(path, 2_000_000)
    backlog = outbox.backlog()
    link = PtyLink()  # an idle microcontroller: nothing new is recorded during the drain
    problems = ProblemLog(logging.getLogger("bench.edge.problems"))
    agent, transport = shipped_agent(
        farm,
        agent_cfg.id,
        outbox,
        SerialLineSource(
            pyserial_factory(link.path, 9600), problems, name=link.path, greeting=SYNC_LINE
        ),
        MqttEndpoint(
            host="127.0.0.1",
            port=stack.broker.port,
            client_id=f"bench-edge-{secrets.token_hex(3)}",
            username=FARM,
            password=SecretStr(stack.passwords[FARM]),
        ),
        SystemClock(),
        problems,
    )
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,))
    # a subscriber, as the collector would be: without one the broker answers "no matching
    # subscribers" and the agent keeps its readings; no collector confirms them here, so
    # drained = the broker delivered them all
    counter = ReadingCounter(stack)
    started = time.perf_counter()
    thread.start()
    try:
        wait_until(lambda: transport.uplink.readings_acked >= backlog, 300, "outbox drained")
        elapsed = time.perf_counter() - started
    finally:
        stop.set()
        thread.join(20)
        counter.close()
        outbox.close()
        link.close()
    return DrainRun(
        readings_per_s=backlog / elapsed,
        readings=transport.uplink.readings_acked,
        messages=transport.uplink.messages_sent,
        payload_bytes=transport.uplink.bytes_sent,
    )


def plain_publisher(stack: Stack, template: Path, window: int = 8) -> float:
    """Baseline 6: the same batches, encoded in advance, published by a bare paho client with
    the agent's window of unacknowledged messages (readings/s)."""
    outbox = Outbox(template, 2_000_000)
    readings = outbox.after(-1, 10_000_000)
    outbox.close()
    payloads = [
        encode_batch(
            ReadingBatch(v=1, farm=FARM, agent="pi-1", readings=readings[i : i + 200]),
            compress=True,
        )
        for i in range(0, len(readings), 200)
    ]
    topic = readings_topic(FARM, "pi-1")
    started = time.perf_counter()  # connecting counts, as it does for the agent
    client = stack.endpoint.client(FARM, f"bench-plain-{secrets.token_hex(3)}", max_inflight=window)
    acked = 0
    sent = 0
    done = threading.Condition()

    def room() -> bool:
        return sent - acked < window

    def all_acked() -> bool:
        return acked >= len(payloads)

    def on_publish(c: Any, u: Any, mid: int, reason: Any, props: Any) -> None:
        nonlocal acked
        with done:
            acked += 1
            done.notify_all()

    client.on_publish = on_publish
    for payload in payloads:
        with done:
            done.wait_for(room, timeout=30)
        client.publish(topic, payload, qos=1)
        sent += 1
    with done:
        done.wait_for(all_acked, timeout=60)
    elapsed = time.perf_counter() - started
    close(client)
    return len(readings) / elapsed


def publish_packet_bytes(topic: str, payload_len: int) -> int:
    """Bytes of an MQTT v5 QoS 1 PUBLISH without properties carrying ``payload_len`` bytes."""
    remaining = 2 + len(topic.encode()) + 2 + 1 + payload_len
    length_bytes = 1 if remaining < 128 else 2 if remaining < 16_384 else 3
    return 1 + length_bytes + remaining


def uplink_bytes(run: DrainRun, template: Path) -> tuple[float, float, float]:
    """(bytes per reading on the wire with the shipped batching, the same with one JSON message
    per reading, payload-only bytes per reading with the shipped batching)."""
    topic = readings_topic(FARM, "pi-1")
    average = run.payload_bytes // run.messages
    framing = publish_packet_bytes(topic, average) - average
    wire = run.payload_bytes + run.messages * framing
    outbox = Outbox(template, 2_000_000)
    readings = outbox.after(-1, 10_000_000)
    outbox.close()
    single = sum(
        publish_packet_bytes(
            topic,
            len(encode_batch(ReadingBatch(v=1, farm=FARM, agent="pi-1", readings=[r]))),
        )
        for r in readings
    )
    return wire / run.readings, single / len(readings), run.payload_bytes / run.readings


FOOTPRINT_MODULES = (
    "",
    "sqlite3",
    "msgspec",
    "serial",
    "pydantic",
    "paho.mqtt.client",
    "farmwatch_shared.contract",
    "farmwatch_shared.farm.model",
    "pydantic_settings",
    "edge.settings",
    "edge.agent",
    "edge.cli",
)
_FOOTPRINT_PROBE = """
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
rss = [line for line in open('/proc/self/status') if line.startswith('VmRSS')][0].split()[1]
print(rss, len(sys.modules))
"""
OURS = ("edge", "farmwatch_shared")
PYDANTIC = ("pydantic", "pydantic_core", "pydantic_settings")
_STACK_PROBE = """
import ast, sys
import edge.cli
ours, skip = tuple(sys.argv[1].split(",")), tuple(sys.argv[2].split(","))
needed = set()
for name, module in list(sys.modules.items()):
    if name.split(".")[0] not in ours or not getattr(module, "__file__", None):
        continue
    body = ast.parse(open(module.__file__, encoding="utf-8").read()).body
    # module-level imports, with those in try blocks; not `if TYPE_CHECKING:` nor in functions
    body += [node for block in body if isinstance(block, ast.Try) for node in block.body]
    for node in body:
        if isinstance(node, ast.Import):
            needed.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            needed.add(node.module)
print(" ".join(sorted(n for n in needed if n.split(".")[0] not in (*ours, *skip, "__future__"))))
"""


def stack_modules(installed: Installed, workdir: Path) -> list[str]:
    """What the edge agent's own modules (those ``edge.cli`` loads) import at module level,
    farmwatch's own packages and pydantic left out: the agent's libraries."""
    out = subprocess.run(
        [str(installed.bin("python")), "-c", _STACK_PROBE, ",".join(OURS), ",".join(PYDANTIC)],
        capture_output=True,
        text=True,
        check=True,
        cwd=workdir,
    )
    return out.stdout.split()


def import_footprint(installed: Installed, workdir: Path) -> list[tuple[str, int, int]]:
    """(what, RSS KiB, modules loaded) of a fresh interpreter of the install after importing
    each of ``FOOTPRINT_MODULES``, and after importing all of the agent's libraries without
    pydantic (``stack_modules``): the floor of this stack."""
    rows = []
    stack = stack_modules(installed, workdir)
    probes = [(m or "(bare interpreter)", [m] if m else []) for m in FOOTPRINT_MODULES]
    probes.insert(1, (f"the agent's {len(stack)} libraries without pydantic", stack))
    for label, modules in probes:
        out = subprocess.run(
            [str(installed.bin("python")), "-c", _FOOTPRINT_PROBE, *modules],
            capture_output=True,
            text=True,
            check=True,
            cwd=workdir,  # not the checkout: its packages would shadow the install's
        ).stdout.split()
        rows.append((label, int(out[0]), int(out[1])))
    return rows
