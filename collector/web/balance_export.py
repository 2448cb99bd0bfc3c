"""``farmwatch-water-balance``: each farm's daily and monthly water balance into InfluxDB.

For the chosen local days (default: the last 3, today included, so late readings are folded
in) and the months they fall in, it reads the series (``balance_query``, the aggregates),
balances each day on its own, from the day before to the day after (``balance``; so a day's
figures do not depend on the range asked for), sums each month of those days, and writes one
point per period and vessel to the measurement ``water_balance`` in the retention policy
``agg_1d`` (kept for ever; ``--retention-policy``):

- tags ``farm``, ``vessel`` (sensor id), ``period`` (``day`` | ``month``);
- fields ``harvested_l``, ``delivered_l``, ``transferred_in_l``, ``transferred_out_l``,
  ``drawn_l``, ``drunk_l``, ``used_l`` (drawn + drunk), ``start_l``, ``end_l`` (litres, not
  rounded), ``litres_per_animal_day`` (troughs with a herd, complete periods), ``buckets``
  (quarter hours with readings), ``complete`` (the period is over and wholly computed);
- timestamp: the period's local start (midnight, farm time zone).

The same period written again is the same points, overwritten: running it twice, or over
days already written, changes nothing but what new readings changed. A vessel without readings
in a period gets no point. Farm totals are the sum over vessels (transfers are fields of their
own and are not in any other). Connection settings are the collector's
(``FARMWATCH_COLLECTOR_INFLUX_URL``, ``_DATABASE``, ``_USERNAME``, ``_PASSWORD_FILE``,
``_FARM_DIR``); it needs to read and write the database.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from collector.web.balance import Period, PeriodBalance, combine, farm_balance
from collector.web.balance_query import DAY_MS, InfluxReader, load_series
from farmwatch_shared.cli import config_error
from farmwatch_shared.farm.directory import DEFAULT_FARM_DIR, load_farm_dir
from farmwatch_shared.farm.model import FarmConfig, FarmConfigError, WaterLevelSensor
from farmwatch_shared.influx import (
    InfluxQueryError,
    InfluxV1Writer,
    PermanentWriteError,
    RetryableWriteError,
)
from farmwatch_shared.lineprotocol import generic_line
from farmwatch_shared.retention import RP_1D
from farmwatch_shared.settings import load_secret_files, one_source_per_secret

MEASUREMENT = "water_balance"


class BalanceExportSettings(BaseSettings):
    """The collector's InfluxDB and farm-directory settings (``FARMWATCH_COLLECTOR_*``); its
    other settings are not this command's and are ignored."""

    model_config = SettingsConfigDict(env_prefix="FARMWATCH_COLLECTOR_", extra="ignore")

    farm_dir: Path = DEFAULT_FARM_DIR
    influx_api: Literal["v1", "v2"] = "v1"
    influx_url: str = "http://localhost:8086"
    influx_database: str = "farmwatch"
    influx_username: str | None = None
    influx_password: SecretStr | None = None
    influx_password_file: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_source(cls, data: Any) -> Any:
        return one_source_per_secret(data, ("influx_password",))

    @model_validator(mode="after")
    def _usable(self) -> BalanceExportSettings:
        if self.influx_api != "v1":
            raise ValueError(
                "el balance lee con InfluxQL: sólo la API v1 / the water balance reads "
                "InfluxQL: influx_api must be v1"
            )
        load_secret_files(self, ("influx_password",))
        return self


def balance_lines(farm: str, period: Period, periods: Iterable[PeriodBalance]) -> list[str]:
    """The ``water_balance`` points of some periods of one farm (module docstring)."""
    lines = []
    for balance in periods:
        for vessel in balance.vessels.values():
            if vessel.buckets == 0:
                continue
            fields: dict[str, float | int | bool | str] = {
                "harvested_l": float(vessel.harvested_l),
                "delivered_l": float(vessel.delivered_l),
                "transferred_in_l": float(vessel.transferred_in_l),
                "transferred_out_l": float(vessel.transferred_out_l),
                "drawn_l": float(vessel.drawn_l),
                "drunk_l": float(vessel.drunk_l),
                "used_l": float(vessel.drawn_l + vessel.drunk_l),
                "buckets": vessel.buckets,
                "complete": balance.complete,
            }
            for name, value in (
                ("start_l", vessel.start_l),
                ("end_l", vessel.end_l),
                ("litres_per_animal_day", vessel.litres_per_animal_day),
            ):
                if value is not None:
                    fields[name] = float(value)
            tags = {"farm": farm, "vessel": vessel.vessel, "period": period}
            lines.append(generic_line(MEASUREMENT, tags, fields, balance.start_ms))
    return lines


def _midnight(day: date, zone: ZoneInfo) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp() * 1000)


def _month_after(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def day_balance(reader: InfluxReader, farm: FarmConfig, day: date, now_ms: int) -> PeriodBalance:
    """One local day balanced on its own: the series from the day before to the day after
    (what there is of it), so that a day gets the same figures whenever it is computed once
    its readings are in."""
    zone = ZoneInfo(farm.farm.timezone)
    lo = _midnight(day, zone)
    hi = _midnight(day + timedelta(days=1), zone)
    ahead = min(hi + DAY_MS, now_ms)
    volumes, rain = load_series(reader, farm, lo, ahead, aggregates=True)
    return farm_balance(farm, volumes, rain, lo, min(hi, now_ms), "day").periods[0]


def farm_points(
    reader: InfluxReader, farm: FarmConfig, first: date, last: date, now_ms: int
) -> list[str]:
    """The day points of ``first..last`` and the month points of the months they touch (each
    the sum of its days), nothing after ``now_ms``."""
    zone = ZoneInfo(farm.farm.timezone)
    lines: list[str] = []
    month = first.replace(day=1)
    while month <= last:
        following = _month_after(month)
        days = []
        day = month
        while day < following and _midnight(day, zone) < now_ms:
            days.append((day, day_balance(reader, farm, day, now_ms)))
            day += timedelta(days=1)
        chosen = [balance for d, balance in days if first <= d <= last]
        lines += balance_lines(farm.farm.id, "day", chosen)
        if days:
            whole = combine(
                farm,
                [balance for _, balance in days],
                _midnight(month, zone),
                _midnight(following, zone),
                month.isoformat()[:7],
            )
            lines += balance_lines(farm.farm.id, "month", [whole])
        month = following
    return lines


def export(
    influx: InfluxV1Writer,
    farms: Iterable[FarmConfig],
    first: date,
    last: date,
    now_ms: int,
) -> int:
    """Compute and write the balances; the number of points written."""
    written = 0
    for farm in farms:
        lines = farm_points(influx, farm, first, last, now_ms)
        if lines:
            influx.write(lines)
        written += len(lines)
    return written


def _describe(farms: Iterable[FarmConfig]) -> None:
    for farm in farms:
        vessels = [s for s in farm.sensors if isinstance(s, WaterLevelSensor)]
        parts = [
            f"{v.id} ({v.role}{', ← ' + v.fed_from if v.fed_from else ''}"
            f"{f', {v.animals} head' if v.animals else ''})"
            for v in vessels
        ]
        print(f"  {farm.farm.id}: {', '.join(parts) or 'sin recipientes / no vessels'}")


DESCRIPTION = """\
Calcula el balance de agua diario y mensual de cada granja y lo escribe en InfluxDB
(water_balance). / Computes each farm's daily and monthly water balance and writes it to
InfluxDB (measurement water_balance, retention policy agg_1d). Safe to run again.

Settings are the collector's: FARMWATCH_COLLECTOR_INFLUX_URL, _INFLUX_DATABASE,
_INFLUX_USERNAME, _INFLUX_PASSWORD_FILE, _FARM_DIR.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="farmwatch-water-balance",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--from", dest="first", type=date.fromisoformat, help="first local day, YYYY-MM-DD"
    )
    parser.add_argument(
        "--to", dest="last", type=date.fromisoformat, help="last local day (default today)"
    )
    parser.add_argument(
        "--days", type=int, default=3, help="without --from: the last DAYS days (default 3)"
    )
    parser.add_argument(
        "--farm", action="append", help="only this farm (repeatable; default every farm)"
    )
    parser.add_argument(
        "--retention-policy", default=RP_1D, help=f"where to write (default {RP_1D})"
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate the settings and farm files, write nothing",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    args = _parser().parse_args(argv)
    try:
        settings = BalanceExportSettings()
        farms = load_farm_dir(settings.farm_dir)
        for farm in farms.values():
            ZoneInfo(farm.farm.timezone)  # the balance's days are local days
    except (ValidationError, OSError, FarmConfigError) as exc:
        return config_error(exc)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        return config_error(FarmConfigError(f"time zone / zona horaria: {exc}"))
    unknown = sorted(set(args.farm or ()) - set(farms))
    if unknown:
        return config_error(FarmConfigError(f"no farm {', '.join(unknown)} in {settings.farm_dir}"))
    chosen = [farms[f] for f in sorted(set(args.farm))] if args.farm else list(farms.values())
    if args.days < 1:
        return config_error(ValueError("--days must be 1 or more"))
    if args.check_config:
        print(
            f"Configuración válida / configuration OK: {settings.influx_url}, database "
            f"{settings.influx_database}, {len(chosen)} farm(s):"
        )
        _describe(chosen)
        return 0
    now_ms = int(time.time() * 1000)
    influx = InfluxV1Writer(
        settings.influx_url,
        settings.influx_database,
        retention_policy=args.retention_policy,
        username=settings.influx_username,
        password=settings.influx_password,
    )
    try:
        for farm in chosen:
            today = datetime.fromtimestamp(now_ms / 1000, ZoneInfo(farm.farm.timezone)).date()
            last = args.last or today
            first = args.first or last - timedelta(days=args.days - 1)
            if first > last:
                return config_error(ValueError(f"--from {first} is after --to {last}"))
            points = export(influx, [farm], first, last, now_ms)
            print(f"{farm.farm.id}: {first}..{last}: {points} puntos / points")
    except (InfluxQueryError, RetryableWriteError, PermanentWriteError) as exc:
        print(f"InfluxDB: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
