"""``farmwatch-collector``: run the collector, check its configuration, or replay its quarantine."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys

from pydantic import ValidationError

from collector.quarantine import QuarantineError, check_quarantine_path
from collector.replay import replay_quarantine
from collector.service import Collector, make_consumer, make_quarantine, make_writer
from collector.settings import CollectorSettings
from farmwatch_shared.cli import config_error, setup_logging, stop_on_signals
from farmwatch_shared.clock import SystemClock
from farmwatch_shared.farm.directory import load_farm_dir
from farmwatch_shared.farm.model import FarmConfig, FarmConfigError
from farmwatch_shared.influx import InfluxV1Writer, PointWriter, RetryableWriteError
from farmwatch_shared.mqtt import Consumer
from farmwatch_shared.problems import ProblemLog
from farmwatch_shared.supervisor import EX_SOFTWARE

DESCRIPTION = """\
Colector farmwatch: recibe las lecturas de todas las granjas por MQTT y las guarda en InfluxDB.
/ farmwatch collector: receives every farm's readings over MQTT and stores them in InfluxDB.

Settings come from FARMWATCH_COLLECTOR_* environment variables (FARMWATCH_COLLECTOR_FARM_DIR,
FARMWATCH_COLLECTOR_MQTT_HOST, FARMWATCH_COLLECTOR_INFLUX_URL,
FARMWATCH_COLLECTOR_INFLUX_PASSWORD_FILE, FARMWATCH_COLLECTOR_QUARANTINE_PATH, ...); see
docs/configuration.md. Exit codes: 0 stopped cleanly, 1 replay could not reach InfluxDB,
2 configuration error, 70 a worker thread died (systemd restarts the service).
"""


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.cause is not None and not args.replay_quarantine:
        parser.error("--cause goes with --replay-quarantine")
    try:
        settings = CollectorSettings()
        farms = load_farm_dir(settings.farm_dir)
        quarantine_state = check_quarantine_path(settings.quarantine_path)
        # built here as for the run (a TLS CA file is loaded), so --check-config sees it fail
        consumer = _consumer(settings)
        writer = make_writer(settings)
    except (ValidationError, OSError, ValueError, FarmConfigError, QuarantineError) as exc:
        return config_error(exc)
    if args.check_config:
        _print_summary(settings, farms, quarantine_state)
        return 0
    setup_logging(settings.log_level)
    log = logging.getLogger("farmwatch.collector")
    if args.replay_quarantine:
        return _replay(settings, farms, writer, args.cause)
    return _run(settings, farms, consumer, writer, log)


def _consumer(settings: CollectorSettings) -> Consumer:
    """The MQTT session, or the hub's pull consumers (``transport = "jetstream"``)."""
    if settings.transport == "mqtt":
        return make_consumer(settings)
    try:
        from collector.jetstream import make_hub_consumer  # optional dependency (hub extra)
    except ImportError as exc:
        raise ValueError(
            f"transport=jetstream needs the hub extra (pip install 'farmwatch[hub]'): {exc}"
        ) from None
    return make_hub_consumer(settings)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="farmwatch-collector",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate settings, farm files and the quarantine file, print a summary, and exit "
        "(0 = valid, 2 = not)",
    )
    parser.add_argument(
        "--replay-quarantine",
        action="store_true",
        help="run the quarantined messages through the normal path again, write what now "
        "passes to InfluxDB and remove it from the quarantine, print what stays, and exit",
    )
    parser.add_argument(
        "--cause",
        metavar="CAUSE",
        help="with --replay-quarantine: only messages quarantined for CAUSE "
        "(e.g. impossible_value, unknown_farm)",
    )
    return parser


def _print_summary(
    settings: CollectorSettings, farms: dict[str, FarmConfig], quarantine_state: str
) -> None:
    target = (
        f"database {settings.influx_database}"
        if settings.influx_api == "v1"
        else f"bucket {settings.influx_bucket}"
    )
    source = f"broker {settings.mqtt_host}:{settings.mqtt_port}"
    if settings.transport == "jetstream":
        source = f"hub (JetStream) {', '.join(settings.nats_urls())}"
    print(
        f"Configuración válida / configuration valid: {source} as {settings.client_id}, "
        f"InfluxDB {settings.influx_api} "
        f"{settings.influx_url} {target}, {len(farms)} farms in {settings.farm_dir}: "
        f"{', '.join(farms)}; quarantine {settings.quarantine_path}: {quarantine_state}"
    )


def _warn_plain_remote_broker(settings: CollectorSettings, log: logging.Logger) -> None:
    hub = settings.nats_cleartext_warning()
    if hub is not None:
        log.warning(hub)
    if settings.mqtt_tls_ca_file is not None or settings.transport != "mqtt":
        return
    try:
        loopback = ipaddress.ip_address(settings.mqtt_host).is_loopback
    except ValueError:
        loopback = settings.mqtt_host == "localhost"
    if not loopback:
        log.warning(
            "Broker %s sin TLS: la contraseña viaja en claro / broker %s without TLS: the "
            "password travels in plain text (set FARMWATCH_COLLECTOR_MQTT_TLS_CA_FILE)",
            settings.mqtt_host,
            settings.mqtt_host,
        )


def _run(
    settings: CollectorSettings,
    farms: dict[str, FarmConfig],
    consumer: Consumer,
    writer: PointWriter,
    log: logging.Logger,
) -> int:
    log.info("Granjas / farms: %d en / in %s (%s)", len(farms), settings.farm_dir, ", ".join(farms))
    _warn_plain_remote_broker(settings, log)
    stop = stop_on_signals()
    clock = SystemClock()
    if isinstance(writer, InfluxV1Writer) and settings.influx_create_database:
        while not stop.is_set():
            try:
                writer.ensure_database()
                break
            except RetryableWriteError as exc:
                log.warning("InfluxDB no disponible / unavailable: %s", exc)
                clock.sleep(2.0)
    problems = ProblemLog(logging.getLogger("farmwatch.collector.problems"))
    quarantine = make_quarantine(settings)
    collector = Collector(
        settings,
        consumer=consumer,
        writer=writer,
        quarantine=quarantine,
        farms=list(farms),
        clock=clock,
        problems=problems,
    )
    try:
        collector.run(stop)
    finally:
        quarantine.close()
    if collector.failed is not None:
        log.critical("Colector detenido / collector stopped: %s", collector.failed)
        return EX_SOFTWARE
    return 0


def _replay(
    settings: CollectorSettings,
    farms: dict[str, FarmConfig],
    writer: PointWriter,
    cause: str | None,
) -> int:
    quarantine = make_quarantine(settings)
    try:
        result = replay_quarantine(
            quarantine, writer, farms=list(farms), clock=SystemClock(), cause=cause
        )
    except RetryableWriteError as exc:
        print(
            f"InfluxDB no disponible / unavailable, nothing more replayed: {exc}", file=sys.stderr
        )
        return 1
    finally:
        quarantine.close()
    kept = ", ".join(f"{c}={n}" for c, n in sorted(result.kept.items())) or "none"
    print(
        f"Cuarentena / quarantine {settings.quarantine_path}: {result.replayed} replayed, "
        f"{result.removed} written and removed ({result.points_written} points), "
        f"still quarantined: {kept}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
