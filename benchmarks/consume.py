"""One ingest consumer in its own process (as the collector runs in production), so runs do not
share an interpreter, its lock or its leftover threads.

``setup`` creates the persistent session (subscribed) and exits; ``drain`` reconnects, waits
until the expected count is handled and prints the seconds it took on stdout. The broker
passwords come from the environment (``FARMWATCH_BENCH_MQTT_PASSWORDS``, JSON).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time

from benchmarks.common import Endpoint
from benchmarks.ingest import (
    PASSWORDS_ENV,
    Consumer,
    CountingSubscriber,
    FarmwatchCollector,
    NaiveBridge,
)
from farmwatch_shared.influx import InfluxV1Writer


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.consume")
    parser.add_argument("kind", choices=["collector", "counter", "naive"])
    parser.add_argument("mode", choices=["setup", "drain"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--influx-url", required=True)
    parser.add_argument("--database", default="")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--expected", type=int, default=0)
    parser.add_argument("--total-readings", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    consumer = make_consumer(args)
    started = time.perf_counter()
    consumer.connect()
    if args.mode == "drain":
        while consumer.handled() < args.expected:
            time.sleep(0.002)
        print(f"{time.perf_counter() - started:.6f}", flush=True)
    consumer.disconnect()
    return 0


def make_consumer(args: argparse.Namespace) -> Consumer:
    """The consumer the arguments name."""
    endpoint = Endpoint(args.port, args.influx_url, json.loads(os.environ[PASSWORDS_ENV]))
    if args.kind == "collector":
        return FarmwatchCollector(
            endpoint, args.client_id, args.database, probe_subscription=args.mode == "setup"
        )
    if args.kind == "counter":
        return CountingSubscriber(endpoint, args.client_id)
    writer = InfluxV1Writer(args.influx_url, args.database)
    return NaiveBridge(endpoint, args.client_id, writer, args.total_readings)


if __name__ == "__main__":
    raise SystemExit(main())
