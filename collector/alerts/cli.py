"""``farmwatch-alerts``: run the alerting service, or check its configuration."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from collector.alerts.api import ApiConfig, tls_context
from collector.alerts.channels import SmsChannel
from collector.alerts.gate import SenderGate, StoreLease
from collector.alerts.http_gateway import TwilioGateway
from collector.alerts.modem import GsmModem
from collector.alerts.modem_profiles import AUTO, PROFILES, profile_choice
from collector.alerts.service import AlertService, ServiceTiming, make_consumer, owns_farm
from collector.alerts.settings import AlertSettings
from collector.alerts.store import AlertStore
from collector.alerts.timeline import current_boot_id
from farmwatch_shared.cli import config_error, setup_logging, stop_on_signals
from farmwatch_shared.clock import Clock, SystemClock
from farmwatch_shared.farm.directory import load_farm_dir
from farmwatch_shared.farm.model import FarmConfig, FarmConfigError
from farmwatch_shared.influx import InfluxV1Writer, RetryableWriteError
from farmwatch_shared.mqtt import Consumer
from farmwatch_shared.problems import ProblemLog
from farmwatch_shared.serial_port import pyserial_factory
from farmwatch_shared.supervisor import EX_SOFTWARE

DESCRIPTION = """\
Alertas farmwatch: evalúa las reglas de los archivos de granja y avisa por SMS (módem GSM y/o
pasarela HTTP), en español o inglés por contacto.
/ farmwatch alerts: evaluates the farm files' alert rules and sends SMS (GSM modem and/or HTTP
gateway), in Spanish or English per contact.

Settings come from FARMWATCH_ALERTS_* environment variables (FARMWATCH_ALERTS_FARM_DIR,
FARMWATCH_ALERTS_STATE_DB, FARMWATCH_ALERTS_MQTT_HOST, FARMWATCH_ALERTS_MODEM_PORT,
FARMWATCH_ALERTS_GATEWAY_URL, FARMWATCH_ALERTS_GATEWAY_AUTH_TOKEN_FILE,
FARMWATCH_ALERTS_API_LISTEN, FARMWATCH_ALERTS_API_TOKEN_FILE, ...); see docs/alerts.md.
"""


def load_farms(settings: AlertSettings) -> dict[str, FarmConfig]:
    """The farm files this instance owns, by farm id."""
    return {
        farm_id: config
        for farm_id, config in load_farm_dir(settings.farm_dir).items()
        if owns_farm(farm_id, settings.instance_index, settings.instance_count)
    }


def api_config(settings: AlertSettings) -> ApiConfig | None:
    """Where the API listens, its token and TLS context (loading the certificate and key:
    OSError / ssl.SSLError when they are unreadable or do not match); None when it is off."""
    address = settings.api_address()
    if address is None:
        return None
    assert settings.api_token is not None  # checked by the settings
    tls = None
    if settings.api_tls_cert is not None and settings.api_tls_key is not None:
        tls = tls_context(settings.api_tls_cert, settings.api_tls_key)
    return ApiConfig(address[0], address[1], settings.api_token, tls)


def _api_summary(api: ApiConfig | None) -> str:
    if api is None:
        return "API off"
    scheme = "https" if api.tls is not None else "http"
    host = f"[{api.host}]" if ":" in api.host else api.host
    return f"API {scheme}://{host}:{api.port} (bearer token)"


def _source(settings: AlertSettings) -> str:
    if settings.transport == "jetstream":
        return f"hub (JetStream, pinned consumer) {', '.join(settings.nats_urls())}"
    return f"broker {settings.mqtt_host}:{settings.mqtt_port}"


def _when(ts_ms: int | None) -> str:
    if ts_ms is None:
        return "-"
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def print_history(state_db: Path, farm: str | None, limit: int, clock: Clock) -> None:
    """The last ``limit`` alert transitions and SMS (UTC), from the state database."""
    store = AlertStore(state_db, clock)
    try:
        print("# alertas / alert events (UTC)")
        for e in store.events(farm)[-limit:]:
            value = "" if e["value"] is None else f" {e['value']:.2f}"
            print(
                f"{_when(e['ts'])} {e['farm']} {e['rule']} #{e['incident'] or '-'} "
                f"{e['from_state']} → {e['to_state']}{value}"
            )
        print("# SMS")
        for m in store.sms_log(farm)[-limit:]:
            print(
                f"{_when(m['created_ms'])} {m['farm']} #{m['incident'] or '-'} {m['kind']} "
                f"…{m['phone'][-4:]} {m['state']} via {m['channel'] or '-'} "
                f"sent {_when(m['sent_ms'])} tries {m['attempts']}: {m['text']}"
            )
    finally:
        store.close()


def _profile_summary(settings: AlertSettings) -> str:
    """The modem profile line of ``--check-config`` (with its line break; none without a
    modem)."""
    if settings.modem_port is None:
        return ""
    head = f"\n  módem / modem {settings.modem_port}: perfil / profile"
    if settings.modem_profile == AUTO:
        return f"{head} auto (AT+CGMM → {', '.join(PROFILES)})"
    profile = PROFILES[settings.modem_profile]
    storage = profile.storage or "el del módem / the modem's"
    return (
        f"{head} {profile.name}: {profile.label}; registro / registration "
        f"{', '.join('+' + r for r in profile.registration)}; SMS storage {storage}"
    )


def _consumer_and_gate(
    settings: AlertSettings, clock: Clock, holder: str
) -> tuple[Consumer, SenderGate]:
    """MQTT with the lease in the state database, or the hub's pinned consumer."""
    if settings.transport == "mqtt":
        consumer = make_consumer(
            settings.mqtt_endpoint(settings.client_id), settings.session_expiry_s
        )
        return consumer, StoreLease(settings.state_db, clock, holder, settings.lease_ttl_s)
    try:
        from collector.alerts.jetstream import PinnedGate, make_hub_consumer  # hub extra
    except ImportError as exc:
        raise ValueError(
            f"transport=jetstream needs the hub extra (pip install 'farmwatch[hub]'): {exc}"
        ) from None
    hub = make_hub_consumer(settings)
    return hub, PinnedGate(hub)


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(
        prog="farmwatch-alerts",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate settings and farm files, print a summary, and exit (0 = valid, 2 = not)",
    )
    parser.add_argument(
        "--history",
        nargs="?",
        const="",
        metavar="FARM",
        help="print the alert and SMS log from the state database (optionally one farm's)",
    )
    parser.add_argument("--limit", type=int, default=50, help="rows of --history (default 50)")
    args = parser.parse_args(argv)
    clock = SystemClock()
    holder = f"{socket.gethostname()}:{os.getpid()}"
    try:
        settings = AlertSettings()
        farms = load_farms(settings)
        api = api_config(settings)
        consumer, gate = _consumer_and_gate(settings, clock, holder)
    except (ValidationError, ValueError, OSError, FarmConfigError) as exc:
        return config_error(exc)
    if args.history is not None:
        print_history(settings.state_db, args.history or None, args.limit, clock)
        return 0
    if args.check_config:
        channels = [
            name
            for name, on in (("modem", settings.modem_port), ("http", settings.gateway_url))
            if on
        ]
        print(
            f"Configuración válida / configuration valid: instance {settings.instance_index + 1}"
            f"/{settings.instance_count}, {_source(settings)} as "
            f"{settings.client_id}, channels {' → '.join(channels)}, state {settings.state_db}, "
            f"{_api_summary(api)}{_profile_summary(settings)}"
        )
        for farm in farms.values():
            print(
                f"  {farm.farm.id}: {len(farm.alerts)} reglas/rules, "
                f"{len(farm.contacts)} contactos/contacts"
            )
            if not farm.contacts:
                print(f"  ! {farm.farm.id}: sin contactos / no contacts", file=sys.stderr)
        return 0
    setup_logging(settings.log_level)
    log = logging.getLogger("farmwatch.alerts")
    stop = stop_on_signals()
    channels_list: list[SmsChannel] = []
    modem = None
    if settings.modem_port is not None:
        modem = GsmModem(
            pyserial_factory(settings.modem_port, settings.modem_baudrate, 0.05),
            clock,
            command_timeout_s=settings.modem_command_timeout_s,
            send_timeout_s=settings.modem_send_timeout_s,
            profile=profile_choice(settings.modem_profile),
            new_message_indication=settings.modem_cnmi,
        )
        channels_list.append(modem)
    if settings.gateway_url is not None:
        assert settings.gateway_auth_token is not None  # checked by the settings
        channels_list.append(
            TwilioGateway(
                settings.gateway_url,
                settings.gateway_account_sid,
                settings.gateway_auth_token,
                settings.gateway_from,
            )
        )
    writer = None
    if settings.influx_url is not None:
        writer = InfluxV1Writer(
            settings.influx_url,
            settings.influx_database,
            username=settings.influx_username,
            password=settings.influx_password,
        )
        try:
            writer.ensure_database()
        except RetryableWriteError as exc:
            log.warning("InfluxDB no disponible; el historial esperará / unavailable: %s", exc)
    service = AlertService(
        farms=farms,
        state_db=settings.state_db,
        consumer=consumer,
        gate=gate,
        channels=channels_list,
        clock=clock,
        problems=ProblemLog(logging.getLogger("farmwatch.alerts.problems")),
        boot_id=current_boot_id(),
        modem=modem,
        history_writer=writer,
        holder=holder,
        retry_initial_s=settings.retry_initial_s,
        retry_max_s=settings.retry_max_s,
        timing=ServiceTiming(modem_health_s=settings.modem_health_s),
        api=api,
    )
    failed = service.run(stop)
    return EX_SOFTWARE if failed is not None else 0


if __name__ == "__main__":
    sys.exit(main())
