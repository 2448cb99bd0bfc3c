"""``farmwatch-collector``: run the collector, or check its configuration."""

from __future__ import annotations

import argparse
import logging

from pydantic import ValidationError

from collector.service import Collector, make_consumer, make_writer
from collector.settings import CollectorSettings
from farmwatch_shared.cli import config_error, setup_logging, stop_on_signals
from farmwatch_shared.clock import SystemClock
from farmwatch_shared.farm.directory import load_farm_dir
from farmwatch_shared.farm.model import FarmConfigError
from farmwatch_shared.influx import InfluxV1Writer, RetryableWriteError
from farmwatch_shared.problems import ProblemLog

DESCRIPTION = """\
Colector farmwatch: recibe las lecturas de todas las granjas por MQTT y las guarda en InfluxDB.
/ farmwatch collector: receives every farm's readings over MQTT and stores them in InfluxDB.

Settings come from FARMWATCH_COLLECTOR_* environment variables (FARMWATCH_COLLECTOR_FARM_DIR,
FARMWATCH_COLLECTOR_MQTT_HOST, FARMWATCH_COLLECTOR_INFLUX_URL,
FARMWATCH_COLLECTOR_INFLUX_PASSWORD_FILE, ...); see docs/configuration.md.
"""


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(
        prog="farmwatch-collector",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate settings and farm files, print a summary, and exit (0 = valid, 2 = not)",
    )
    args = parser.parse_args(argv)
    try:
        settings = CollectorSettings()
        farms = load_farm_dir(settings.farm_dir)
    except (ValidationError, OSError, FarmConfigError) as exc:
        return config_error(exc)
    if args.check_config:
        target = (
            f"database {settings.influx_database}"
            if settings.influx_api == "v1"
            else f"bucket {settings.influx_bucket}"
        )
        print(
            f"Configuración válida / configuration valid: broker {settings.mqtt_host}:"
            f"{settings.mqtt_port} as {settings.client_id}, InfluxDB {settings.influx_api} "
            f"{settings.influx_url} {target}, {len(farms)} farms in {settings.farm_dir}: "
            f"{', '.join(farms)}"
        )
        return 0
    setup_logging(settings.log_level)
    log = logging.getLogger("farmwatch.collector")
    log.info("Granjas / farms: %d en / in %s (%s)", len(farms), settings.farm_dir, ", ".join(farms))
    stop = stop_on_signals()
    clock = SystemClock()
    writer = make_writer(settings)
    if isinstance(writer, InfluxV1Writer) and settings.influx_create_database:
        while not stop.is_set():
            try:
                writer.ensure_database()
                break
            except RetryableWriteError as exc:
                log.warning("InfluxDB no disponible / unavailable: %s", exc)
                clock.sleep(2.0)
    problems = ProblemLog(logging.getLogger("farmwatch.collector.problems"))
    Collector(settings, make_consumer(settings), writer, clock, problems).run(stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
