"""Alert latency: from the reading that crossed a threshold to ``AT+CMGS`` at the GSM modem.

Real Mosquitto (shipped policy), the real alerting service (own MQTT session, SQLite state and
outbox, GSM modem channel over pyserial) and the modem emulator on a pty. Two paths:

* ``mqtt``: the crossing reading is published to the broker (QoS 1) as the edge agent would;
  the clock starts at the publish call. This is the alerter's own latency.
* ``agent``: the emulated microcontroller writes the reading on its serial line; the real edge
  agent (outbox, batching with ``--batch-age``, by default the shipped batch age: the
  crossing is news, ``edge/urgency.py``, and goes at once) publishes it. The clock starts at
  the serial write.

The rule is ``level_below`` with ``for_s = 0`` (the alert fires on the crossing reading); each
round first brings the level back up (resolution SMS) and then drops it again.

Run: ``.venv/bin/python -m benchmarks.alert_latency [--rounds 30] [--path mqtt|agent]``
"""

from __future__ import annotations

import argparse
import logging
import secrets
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import SecretStr

from benchmarks.edge import shipped_agent
from collector.alerts.gate import StoreLease
from collector.alerts.modem import GsmModem
from collector.alerts.modem_profiles import CLASSIC_2G
from collector.alerts.service import AlertService, make_consumer
from collector.alerts.timeline import current_boot_id
from edge.outbox import Outbox
from edge.serial_source import SerialLineSource
from edge.settings import EdgeSettings
from farmwatch_emulators.gsm_modem import GsmModemEmulator
from farmwatch_emulators.mcu import McuEmulator
from farmwatch_emulators.pty_link import PtyLink
from farmwatch_emulators.scenario import raw_for
from farmwatch_local.services import MosquittoServer
from farmwatch_shared.clock import SystemClock
from farmwatch_shared.contract import (
    Reading,
    ReadingBatch,
    SensorKind,
    encode_batch,
    readings_topic,
)
from farmwatch_shared.farm.alert_rules import LevelBelow
from farmwatch_shared.farm.model import WaterLevelSensor, load_farm_config
from farmwatch_shared.mcu_protocol import SYNC_LINE
from farmwatch_shared.mqtt import MqttEndpoint
from farmwatch_shared.problems import ProblemLog
from farmwatch_shared.serial_port import pyserial_factory

FARM = "oax-mixteca"
SENSOR = "trough-north"
REPO = Path(__file__).resolve().parent.parent
ALERTS_USER = "farmwatch-alerts"


def _wait(predicate: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(0.001)


def run(rounds: int, path: str, batch_age_s: float, workdir: Path) -> list[float]:
    """Latencies in seconds, one per round."""
    passwords = {ALERTS_USER: secrets.token_hex(8), FARM: secrets.token_hex(8)}
    broker = MosquittoServer(data_dir=workdir / "mosquitto", users=passwords)
    broker.start()
    config = load_farm_config(REPO / "firmware_configs" / f"{FARM}.toml")
    rule = LevelBelow(
        id="bench-low",
        type="level_below",
        sensor=SENSOR,
        threshold_pct=25,
        recover_above_pct=35,
        for_s=0,
        resolve_for_s=0,
        cooldown_s=0,
    )
    config = config.model_copy(update={"alerts": (rule,)})
    trough = next(s for s in config.sensors if s.id == SENSOR)
    assert isinstance(trough, WaterLevelSensor)
    modem_link = PtyLink()
    emulator = GsmModemEmulator(modem_link)
    emulator.start()
    clock = SystemClock()
    modem = GsmModem(pyserial_factory(modem_link.path, 115200, 0.05), clock, profile=CLASSIC_2G)
    service = AlertService(
        farms={FARM: config},
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
    )
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
    thread.start()
    if not service.subscribed.wait(15):
        raise RuntimeError("alerter did not subscribe")

    send: Callable[[float], float]
    cleanup: list[Callable[[], object]] = []
    if path == "mqtt":
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id="bench-publisher",
            protocol=paho.MQTTv5,
        )
        client.username_pw_set(FARM, passwords[FARM])
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        seq = iter(range(10**9))

        def send_mqtt(pct: float) -> float:
            reading = Reading(
                next(seq), SENSOR, SensorKind.WATER_LEVEL, clock.now_ms(), pct, "%", 0.0, None
            )
            payload = encode_batch(ReadingBatch(1, FARM, "pi-1", [reading]))
            started = time.monotonic()
            client.publish(readings_topic(FARM, "pi-1"), payload, qos=1)
            return started

        send = send_mqtt

        def stop_client() -> None:
            client.loop_stop()
            client.disconnect()

        cleanup.append(stop_client)
    else:
        link = PtyLink()
        mcu = McuEmulator(link)
        outbox = Outbox(workdir / "outbox.sqlite3", 1_000_000)
        problems = ProblemLog(logging.getLogger("bench.edge"))
        source = SerialLineSource(
            pyserial_factory(link.path, 9600), problems, name=link.path, greeting=SYNC_LINE
        )
        agent, _ = shipped_agent(
            config,
            "pi-1",
            outbox,
            source,
            MqttEndpoint("127.0.0.1", broker.port, "bench-edge", FARM, SecretStr(passwords[FARM])),
            clock,
            problems,
            batch_max_age_s=batch_age_s,
        )
        agent_stop = threading.Event()
        agent_thread = threading.Thread(target=agent.run, args=(agent_stop,), daemon=True)
        mcu.start()
        agent_thread.start()
        _wait(lambda: mcu.syncs_received > 0)

        def send_serial(pct: float) -> float:
            started = time.monotonic()
            mcu.sample(trough.channel, raw_for(trough, pct))
            return started

        send = send_serial

        def stop_agent() -> None:
            agent_stop.set()
            agent_thread.join(10)
            mcu.stop()
            link.close()

        cleanup.append(stop_agent)

    try:
        latencies = _latencies(rounds, send, emulator)
    finally:
        for action in cleanup:
            action()
        stop.set()
        thread.join(30)
        emulator.stop()
        modem_link.close()
        broker.stop()
    return latencies[1:]  # the first round warms up connections and SQLite


def _latencies(
    rounds: int, send: Callable[[float], float], emulator: GsmModemEmulator
) -> list[float]:
    """One round: the level back above the threshold (waiting for the resolution SMS after
    the first round), then below it, timed from the send to the modem's AT+CMGS."""

    def grew(count: int) -> Callable[[], bool]:
        return lambda: len(emulator.parts) > count

    latencies = []
    for _ in range(rounds + 1):
        before = len(emulator.parts)
        send(60.0)
        if before:  # a resolution SMS follows a firing one
            _wait(grew(before))
        time.sleep(0.05)
        before = len(emulator.parts)
        started = send(10.0)
        _wait(grew(before))
        latencies.append(emulator.parts[before].at_cmgs_monotonic - started)
    return latencies


def main() -> None:
    """Run and print median and spread."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--path", choices=("mqtt", "agent"), default="mqtt")
    parser.add_argument(
        "--batch-age",
        type=float,
        default=EdgeSettings.model_fields["batch_max_age_s"].default,
        help="agent path: batch age s (default: the shipped one)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="farmwatch-alert-bench-") as tmp:
        latencies = sorted(run(args.rounds, args.path, args.batch_age, Path(tmp)))
    ms = [x * 1000 for x in latencies]
    p90 = ms[min(len(ms) - 1, round(0.9 * (len(ms) - 1)))]
    age = f", batch age {args.batch_age:g} s" if args.path == "agent" else ""
    print(
        f"alert latency ({args.path} path{age}, {len(ms)} rounds): "
        f"median {statistics.median(ms):.1f} ms,"
        f" p90 {p90:.1f} ms, min {ms[0]:.1f} ms, max {ms[-1]:.1f} ms,"
        f" stdev {statistics.pstdev(ms):.1f} ms"
    )


if __name__ == "__main__":
    main()
