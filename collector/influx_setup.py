"""``farmwatch-influx-setup``: retention policies and continuous queries on InfluxDB 1.x.

Raw readings live in the ``raw`` retention policy (the database default, so the collector
writes there without naming it) for ``raw_duration``; continuous queries roll them up into
15-minute and daily aggregates kept for years. Long-range panels read the aggregates.
The InfluxDB 2.x equivalent (buckets + tasks) is in ``deploy/influxdb2/``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from collector.settings import CollectorSettings
from farmwatch_shared.cli import config_error
from farmwatch_shared.influx import InfluxV1Writer, PermanentWriteError, RetryableWriteError
from farmwatch_shared.retention import (
    DAY_OFFSET,
    LEVEL_MEASUREMENTS,
    RAW_RP,
    RP_1D,
    RP_15M,
    SUM_MEASUREMENTS,
)

_DAY_OFFSET_MS = 6 * 3_600_000


@dataclass(frozen=True)
class RetentionPlan:
    """How long each resolution is kept and how often the roll-ups are recomputed."""

    database: str = "farmwatch"
    raw_duration: str = "90d"
    agg_15m_duration: str = "1825d"
    agg_1d_duration: str = "INF"
    resample_every: str = "5m"
    """How often the continuous queries recompute their recent buckets (late readings from an
    agent that was offline land in buckets that are recomputed for ``resample_for_*``)."""
    resample_for_15m: str = "6h"
    resample_for_1d: str = "2d"

    def retention_policies(self) -> list[tuple[str, str, bool]]:
        """(name, duration, default) of each retention policy."""
        return [
            (RAW_RP, self.raw_duration, True),
            (RP_15M, self.agg_15m_duration, False),
            (RP_1D, self.agg_1d_duration, False),
        ]

    def continuous_queries(self) -> dict[str, str]:
        """CQ name → CREATE CONTINUOUS QUERY statement."""
        db = self.database
        queries: dict[str, str] = {}
        for m in LEVEL_MEASUREMENTS:
            litres = ', mean("volume_l") AS "volume_l"' if m == "water_level" else ""
            queries[f"cq_{m}_15m"] = self._cq(
                f"cq_{m}_15m",
                self.resample_for_15m,
                f'SELECT mean("value") AS "value", min("value") AS "value_min", '
                f'max("value") AS "value_max", count("value") AS "samples"{litres} '
                f'INTO "{db}"."{RP_15M}"."{m}" FROM "{db}"."{RAW_RP}"."{m}" '
                f"GROUP BY time(15m), *",
            )
            queries[f"cq_{m}_1d"] = self._cq(
                f"cq_{m}_1d",
                self.resample_for_1d,
                f'SELECT mean("value") AS "value", min("value_min") AS "value_min", '
                f'max("value_max") AS "value_max", sum("samples") AS "samples"'
                f"{litres} "
                f'INTO "{db}"."{RP_1D}"."{m}" FROM "{db}"."{RP_15M}"."{m}" '
                f"GROUP BY time(1d, {DAY_OFFSET}), *",
            )
        for m in SUM_MEASUREMENTS:
            queries[f"cq_{m}_15m"] = self._cq(
                f"cq_{m}_15m",
                self.resample_for_15m,
                f'SELECT sum("value") AS "value", count("value") AS "samples" '
                f'INTO "{db}"."{RP_15M}"."{m}" FROM "{db}"."{RAW_RP}"."{m}" '
                f"GROUP BY time(15m), *",
            )
            queries[f"cq_{m}_1d"] = self._cq(
                f"cq_{m}_1d",
                self.resample_for_1d,
                f'SELECT sum("value") AS "value", sum("samples") AS "samples" '
                f'INTO "{db}"."{RP_1D}"."{m}" FROM "{db}"."{RP_15M}"."{m}" '
                f"GROUP BY time(1d, {DAY_OFFSET}), *",
            )
        return queries

    def rollups(self) -> list[str]:
        """The SELECT … INTO bodies of the continuous queries, 15-minute ones first."""
        bodies = [
            statement.split(" BEGIN ", 1)[1].removesuffix(" END")
            for statement in self.continuous_queries().values()
        ]
        return sorted(bodies, key=lambda body: "GROUP BY time(15m)" not in body)

    def _cq(self, name: str, resample_for: str, select: str) -> str:
        return (
            f'CREATE CONTINUOUS QUERY "{name}" ON "{self.database}" '
            f"RESAMPLE EVERY {self.resample_every} FOR {resample_for} BEGIN {select} END"
        )


class SetupError(RuntimeError):
    """InfluxDB refused a set-up statement."""


Query = Callable[[str], dict[str, object]]
"""Runs one InfluxQL statement (POST) and returns the JSON answer."""


def _run(query: Query, statement: str) -> list[dict[str, object]]:
    answer = query(statement)
    results = answer.get("results", [])
    assert isinstance(results, list)
    for result in results:
        if isinstance(result, dict) and "error" in result:
            raise SetupError(f"{statement}: {result['error']}")
    return results


def _names(results: list[dict[str, object]]) -> set[str]:
    names: set[str] = set()
    for result in results:
        for series in result.get("series", []) or []:  # type: ignore[attr-defined]
            columns = series.get("columns", [])
            for row in series.get("values", []) or []:
                names.add(str(row[columns.index("name")]))
    return names


def apply(query: Query, plan: RetentionPlan) -> list[str]:
    """Create or update the database, retention policies and continuous queries (idempotent).
    Returns the statements that were run."""
    db = plan.database
    ran: list[str] = []

    def run(statement: str) -> list[dict[str, object]]:
        ran.append(statement)
        return _run(query, statement)

    run(f'CREATE DATABASE "{db}"')
    existing = _names(run(f'SHOW RETENTION POLICIES ON "{db}"'))
    for name, duration, default in plan.retention_policies():
        verb = "ALTER" if name in existing else "CREATE"
        replication = "" if verb == "ALTER" else " REPLICATION 1"
        run(
            f'{verb} RETENTION POLICY "{name}" ON "{db}" DURATION {duration}{replication}'
            + (" DEFAULT" if default else "")
        )
    # Continuous queries cannot be altered: drop and recreate (stateless; RESAMPLE FOR
    # recomputes the recent buckets, so nothing is lost).
    shown = run("SHOW CONTINUOUS QUERIES")
    current: set[str] = set()
    for result in shown:
        for series in result.get("series", []) or []:  # type: ignore[attr-defined]
            if series.get("name") == db:
                current.update(str(row[0]) for row in series.get("values", []) or [])
    for name, statement in plan.continuous_queries().items():
        if name in current:
            run(f'DROP CONTINUOUS QUERY "{name}" ON "{db}"')
        run(statement)
    return ran


def backfill(query: Query, plan: RetentionPlan, start_ms: int, end_ms: int) -> int:
    """Recompute the aggregates of ``[start_ms, end_ms)`` from the raw readings.

    The continuous queries only revisit the last hours (``resample_for_*``); an agent that was
    offline for days delivers its outbox later, and this folds those readings in. Returns the
    number of statements run."""
    day_ms = 86_400_000
    runs = 0
    for body in plan.rollups():
        # widen to whole buckets so no partial bucket overwrites a complete one
        lo, hi = (start_ms, end_ms)
        size, offset = (day_ms, _DAY_OFFSET_MS) if "time(1d" in body else (900_000, 0)
        lo -= (lo - offset) % size
        hi += size - (hi - offset) % size
        bounded = body.replace(
            " GROUP BY ", f" WHERE time >= {lo}ms AND time < {hi}ms GROUP BY ", 1
        )
        _run(query, bounded)
        runs += 1
    return runs


DESCRIPTION = """\
Crea las políticas de retención y las consultas continuas de farmwatch en InfluxDB 1.x.
/ Creates farmwatch's retention policies and continuous queries on InfluxDB 1.x.

Connection settings are the collector's (FARMWATCH_COLLECTOR_INFLUX_URL,
FARMWATCH_COLLECTOR_INFLUX_DATABASE, FARMWATCH_COLLECTOR_INFLUX_USERNAME,
FARMWATCH_COLLECTOR_INFLUX_PASSWORD_FILE). Safe to run again: it updates what changed.
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(
        prog="farmwatch-influx-setup",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    defaults = RetentionPlan()
    parser.add_argument("--raw", default=defaults.raw_duration, help="keep raw readings (90d)")
    parser.add_argument("--agg-15m", default=defaults.agg_15m_duration, help="15-min aggregates")
    parser.add_argument("--agg-1d", default=defaults.agg_1d_duration, help="daily aggregates")
    parser.add_argument(
        "--resample-every", default=defaults.resample_every, help="CQ recompute interval"
    )
    parser.add_argument(
        "--print", action="store_true", help="print the statements instead of running them"
    )
    parser.add_argument(
        "--backfill-days",
        type=float,
        metavar="DAYS",
        help="only recompute the aggregates of the last DAYS days (after an agent's long outage)",
    )
    args = parser.parse_args(argv)
    try:
        settings = CollectorSettings()
    except (ValidationError, OSError) as exc:
        return config_error(exc)
    plan = RetentionPlan(
        database=settings.influx_database,
        raw_duration=args.raw,
        agg_15m_duration=args.agg_15m,
        agg_1d_duration=args.agg_1d,
        resample_every=args.resample_every,
    )
    if args.print:
        for name, duration, default in plan.retention_policies():
            print(
                f'CREATE RETENTION POLICY "{name}" ON "{plan.database}" DURATION {duration} '
                f"REPLICATION 1{' DEFAULT' if default else ''}"
            )
        for statement in plan.continuous_queries().values():
            print(statement)
        return 0
    writer = InfluxV1Writer(
        settings.influx_url,
        settings.influx_database,
        username=settings.influx_username,
        password=settings.influx_password,
    )
    if args.backfill_days is not None:
        now_ms = int(time.time() * 1000)
        start_ms = now_ms - int(args.backfill_days * 86_400_000)
        try:
            runs = backfill(lambda q: writer.query(q, method="POST"), plan, start_ms, now_ms)
        except (SetupError, RetryableWriteError, PermanentWriteError) as exc:
            print(f"InfluxDB rechazó / refused the backfill: {exc}", file=sys.stderr)
            return 1
        print(f"Listo / done: {runs} roll-ups recomputed over {args.backfill_days:g} days")
        return 0
    try:
        ran = apply(lambda q: writer.query(q, method="POST"), plan)
    except (SetupError, RetryableWriteError, PermanentWriteError) as exc:
        print(f"InfluxDB rechazó la configuración / refused the set-up: {exc}", file=sys.stderr)
        return 1
    print(
        f"Listo / done: {len(plan.retention_policies())} retention policies, "
        f"{len(plan.continuous_queries())} continuous queries on {plan.database} "
        f"({len(ran)} statements)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
