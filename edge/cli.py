"""``farmwatch-edge``: run the edge agent, or check its configuration."""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import tempfile
from pathlib import Path

from pydantic import ValidationError

from edge.agent import EdgeAgent
from edge.batching import payload_limit
from edge.clock_guard import ClockGuard, current_boot_id, ntp_sync_probe
from edge.committer import ReadingCommitter
from edge.drivers.poller import OutboxSink, build_pollers
from edge.lorawan.source import build_reader
from edge.outbox import Outbox
from edge.serial_source import SerialLineSource
from edge.settings import EdgeSettings
from edge.transport import Transport, UplinkArgs
from edge.transport_mqtt import MqttTransport
from edge.urgency import Urgency, farm_watches
from farmwatch_shared.calibration.calibrate import Calibrator
from farmwatch_shared.calibration.curves import CalibrationBook
from farmwatch_shared.cli import config_error, setup_logging, stop_on_signals
from farmwatch_shared.clock import Clock, SystemClock
from farmwatch_shared.farm.alert_rules import Silent
from farmwatch_shared.farm.model import (
    AgentConfig,
    FarmConfig,
    FarmConfigError,
    load_farm_config,
)
from farmwatch_shared.mcu_protocol import SYNC_LINE
from farmwatch_shared.problems import ProblemLog
from farmwatch_shared.serial_port import pyserial_factory
from farmwatch_shared.supervisor import EX_SOFTWARE

log = logging.getLogger(__name__)
CONFIG_ERRORS = (ValidationError, FarmConfigError, OSError, ValueError)
"""What a configuration that cannot run raises (a missing TLS CA file is an OSError)."""
DESCRIPTION = """\
Agente de campo farmwatch: lee los sensores del microcontrolador por puerto serie y publica
las lecturas por MQTT. / farmwatch edge agent: reads the microcontroller's sensors over serial
and publishes the readings over MQTT.

Settings come from FARMWATCH_EDGE_* environment variables (FARMWATCH_EDGE_FARM_FILE,
FARMWATCH_EDGE_MQTT_HOST, FARMWATCH_EDGE_MQTT_PASSWORD_FILE, ...); see docs/configuration.md.
"""


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(
        prog="farmwatch-edge",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--farm-file", help="farm file (overrides FARMWATCH_EDGE_FARM_FILE)")
    parser.add_argument("--agent-id", help="agent in the farm file (if it has several)")
    parser.add_argument("--serial-port", help="serial device (overrides the farm file)")
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="build the agent as start-up would (settings, farm file, calibration, field buses, "
        "broker TLS), print a summary, and exit (0 = valid, 2 = not)",
    )
    args = parser.parse_args(argv)
    overrides = {
        key: value
        for key, value in (
            ("farm_file", args.farm_file),
            ("agent_id", args.agent_id),
            ("serial_port", args.serial_port),
        )
        if value is not None
    }
    try:
        settings = EdgeSettings(**overrides)
        farm = load_farm_config(settings.farm_file)
        agent_cfg = farm.agent(settings.agent_id)
    except CONFIG_ERRORS as exc:
        return config_error(exc)
    if args.check_config:
        return _check(settings, farm, agent_cfg)
    return _run(settings, farm, agent_cfg)


def _check(settings: EdgeSettings, farm: FarmConfig, agent_cfg: AgentConfig) -> int:
    """Build the agent exactly as start-up does (against a scratch outbox), run nothing."""
    clock = SystemClock()
    problems = ProblemLog(logging.getLogger("farmwatch.edge.problems"), monotonic=clock.monotonic)
    with tempfile.TemporaryDirectory(prefix="farmwatch-edge-check-") as scratch:
        outbox = Outbox(Path(scratch) / "outbox.sqlite3", settings.outbox_max_readings)
        try:
            agent = build_agent(settings, farm, agent_cfg, outbox, clock, problems)
        except CONFIG_ERRORS as exc:
            return config_error(exc)
        finally:
            outbox.close()
        agent.close()
    sensors = farm.sensors_of(agent_cfg.id)
    port = settings.serial_port or agent_cfg.serial_port
    uplink = (
        f"broker {settings.mqtt_host}:{settings.mqtt_port}"
        f"{' (TLS)' if settings.mqtt_tls_ca_file is not None else ''}"
    )
    if settings.transport == "jetstream":
        tls = " (TLS)" if settings.nats_tls_ca_file is not None else ""
        uplink = f"hub (JetStream) {', '.join(settings.nats_urls())}{tls}"
    print(
        f"Configuración válida / configuration valid: farm {farm.farm.id}, agent "
        f"{agent_cfg.id}, {len(sensors)} sensors on {port} and "
        f"{len(farm.buses_of(agent_cfg.id))} field buses, {uplink}"
    )
    devices = farm.lorawan_devices_of(agent_cfg.id)
    if devices and settings.lorawan_mqtt_host is not None:
        tls = " (TLS)" if settings.lorawan_mqtt_tls_ca_file is not None else ""
        print(
            f"LoRaWAN: {len(devices)} devices via {devices[0].network} at "
            f"{settings.lorawan_mqtt_host}:{settings.lorawan_mqtt_port}{tls}"
        )
    for warning in _warnings(settings, farm, agent_cfg):
        print(f"Aviso / warning: {warning}")
    return 0


def _warnings(settings: EdgeSettings, farm: FarmConfig, agent_cfg: AgentConfig) -> list[str]:
    mqtt = settings.cleartext_warning() if settings.transport == "mqtt" else None
    found = [mqtt, settings.lorawan_cleartext_warning(), settings.nats_cleartext_warning()]
    devices = farm.lorawan_devices_of(agent_cfg.id)
    if devices and settings.lorawan_mqtt_host is None:
        found.append(
            f"{len(devices)} dispositivos LoRaWAN sin servidor de red configurado: no se leen / "
            f"{len(devices)} LoRaWAN devices but no network server broker "
            "(FARMWATCH_EDGE_LORAWAN_MQTT_HOST): they are not read"
        )
    return [warning for warning in found if warning is not None]


def _run(settings: EdgeSettings, farm: FarmConfig, agent_cfg: AgentConfig) -> int:
    setup_logging(settings.log_level)
    stop = stop_on_signals()
    clock = SystemClock()
    problems = ProblemLog(logging.getLogger("farmwatch.edge.problems"), monotonic=clock.monotonic)
    try:
        outbox = Outbox(settings.outbox_path, settings.outbox_max_readings)
    except (OSError, sqlite3.Error) as exc:
        return config_error(exc)
    try:
        agent = build_agent(settings, farm, agent_cfg, outbox, clock, problems)
    except CONFIG_ERRORS as exc:
        outbox.close()
        return config_error(exc)
    for warning in _warnings(settings, farm, agent_cfg):
        log.warning(warning)
    log.info(
        "Agente iniciado / agent started: %s/%s pid %d", farm.farm.id, agent_cfg.id, os.getpid()
    )
    failure = agent.run(stop)
    if failure is not None:
        return EX_SOFTWARE  # the supervisor logged which worker died; systemd restarts us
    outbox.close()
    return 0


def _hub_transport(settings: EdgeSettings, name: str, uplink: UplinkArgs) -> Transport:
    """The hub transport (nats-py is the ``hub`` extra: imported only when chosen)."""
    try:
        from edge.transport_hub import HubTransport  # optional dependency
    except ImportError as exc:
        raise ValueError(
            f"transport=jetstream needs the hub extra (pip install 'farmwatch[hub]'): {exc}"
        ) from None
    return HubTransport(
        settings.nats_endpoint(name), uplink, ack_timeout_s=settings.nats_ack_timeout_s
    )


def _transport(settings: EdgeSettings, name: str, uplink: UplinkArgs) -> Transport:
    """The transport ``settings`` choose, named ``name`` on the broker or the hub."""
    if settings.transport == "jetstream":
        return _hub_transport(settings, name, uplink)
    return MqttTransport(
        settings.mqtt_endpoint(name), uplink, commit_timeout_s=settings.commit_timeout_s
    )


SIGN_OF_LIFE_MARGIN_S = 600
"""Between two batches the newest reading the server has ages by the batch age plus a sample
interval; 10 minutes cover that, a reconnect and some clock skew."""


def _status_interval(settings: EdgeSettings) -> tuple[str, float]:
    """The setting that times the agent's status (on the hub: its presence put), its value."""
    if settings.transport == "jetstream":
        return "nats_presence_interval_s", settings.nats_presence_interval_s
    return "status_interval_s", settings.status_interval_s


def check_signs_of_life(settings: EdgeSettings, farm: FarmConfig, agent_id: str) -> None:
    """Refuse a batch age and status interval that would let a ``silent`` rule of the farm
    fire while all is well: for a rule on this agent a batch or a status (on the hub: its
    presence put) is its sign of life (the more frequent of the two counts), for a rule on one
    of its sensors only a batch is;
    either must come ``SIGN_OF_LIFE_MARGIN_S`` before the rule's ``after_s``."""
    sensors = {sensor.id for sensor in farm.sensors_of(agent_id)}
    status_name, status_s = _status_interval(settings)
    for rule in farm.alerts:
        if not isinstance(rule, Silent):
            continue
        if rule.agent == agent_id:
            gap = min(settings.batch_max_age_s, status_s)
            what = f"batch_max_age_s={settings.batch_max_age_s:g} y {status_name}={status_s:g}"
            need = "the shorter of the two"
        elif rule.sensor in sensors:
            gap = settings.batch_max_age_s
            what = f"batch_max_age_s={settings.batch_max_age_s:g}"
            need = "it"
        else:
            continue
        limit = rule.after_s - SIGN_OF_LIFE_MARGIN_S
        if gap > limit:
            raise ValueError(
                f"{what}: la regla {rule.id} (after_s={rule.after_s}) daría por callado lo que "
                f"funciona / would call silent what works: {need} must be at most {limit:g} s"
            )


def build_agent(
    settings: EdgeSettings,
    farm: FarmConfig,
    agent_cfg: AgentConfig,
    outbox: Outbox,
    clock: Clock,
    problems: ProblemLog,
) -> EdgeAgent:
    """The agent ``farmwatch-edge`` runs, built from its configuration; raises what a bad
    configuration raises (``CONFIG_ERRORS``), with nothing started or opened yet."""
    check_signs_of_life(settings, farm, agent_cfg.id)
    guard = ClockGuard(clock, ntp_sync_probe if settings.clock_check == "ntp" else None)
    boot_id = current_boot_id()
    calibrator = Calibrator(CalibrationBook(farm.calibrations, farm.soil_curves))
    committer = ReadingCommitter(outbox, clock, problems, calibrator, guard.trusted, boot_id)
    sensors = farm.sensors_of(agent_cfg.id)
    name = f"farmwatch-edge-{farm.farm.id}-{agent_cfg.id}"
    lorawan = build_reader(
        farm=farm,
        agent_id=agent_cfg.id,
        endpoint=settings.lorawan_endpoint(f"{name}-lorawan"),
        session_expiry_s=settings.lorawan_session_expiry_s,
        receive_maximum=settings.lorawan_receive_maximum,
        committer=committer,
        outbox=outbox,
        clock=clock,
        problems=problems,
        clock_trusted=guard.trusted,
    )
    pollers = build_pollers(farm, agent_cfg.id, OutboxSink(sensors, committer), clock, problems)
    port = settings.serial_port or agent_cfg.serial_port
    source = None
    if any(s.source is None for s in sensors):
        source = SerialLineSource(
            pyserial_factory(port, agent_cfg.microcontroller.baudrate),
            problems,
            name=port,
            greeting=SYNC_LINE,
        )
    urgency = Urgency(farm_watches(farm, agent_cfg.id, level_fall=settings.urgent_fall_pct))
    try:
        uplink = UplinkArgs(
            farm=farm.farm.id,
            agent=agent_cfg.id,
            outbox=outbox,
            clock=clock,
            problems=problems,
            batch_max_readings=settings.batch_max_readings,
            batch_max_age_s=settings.batch_max_age_s,
            compress=settings.compress,
            window=settings.inflight_window,
            payload_limit=payload_limit(settings.max_packet_bytes),
            payload_version=settings.payload_version,
            urgency=urgency,
        )
        return EdgeAgent(
            farm=farm.farm.id,
            agent=agent_cfg.id,
            sensors=sensors,
            outbox=outbox,
            source=source,
            transport=_transport(settings, name, uplink),
            clock=clock,
            problems=problems,
            committer=committer,
            clock_guard=guard,
            boot_id=boot_id,
            status_interval_s=_status_interval(settings)[1],
            batch_max_readings=settings.batch_max_readings,
            pollers=pollers,
            lorawan=lorawan,
        )
    except BaseException:
        for poller in pollers:
            poller.close()
        raise


if __name__ == "__main__":
    raise SystemExit(main())
