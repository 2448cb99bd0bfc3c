"""The store past one server (issue 15, docs/scale-out.md).

What the collector's ``/api/v2/write`` writer (``influx_api = "v2"``) can target, checked on
the VictoriaMetrics the tests run, with the three facts a clustered store must honour for
farmwatch:

- a URL with a path is kept: VictoriaMetrics serves InfluxDB's write under ``/influx`` too, the
  shape of a cluster's ``vminsert`` URL (``http://vminsert:8480/insert/0/influx``);
- a redelivery writes the same point again: InfluxDB keeps one point per series and time, but
  VictoriaMetrics keeps both samples unless deduplication is on (``-dedup.minScrapeInterval``,
  on every ``vmstorage`` and ``vmselect`` of a cluster);
- a point older than the store's retention is answered 204 and dropped: the retention must
  exceed the longest backlog an agent's outbox can hold.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from support.waiting import wait_for

from collector.service import make_writer
from collector.settings import CollectorSettings
from farmwatch_local.services import VictoriaMetricsServer
from farmwatch_shared.contract import Reading, SensorKind
from farmwatch_shared.lineprotocol import reading_lines

DAY_MS = 24 * 3600 * 1000


def _lines(ts_ms: int, count: int = 3) -> list[str]:
    readings = [
        Reading(
            seq=i,
            sensor="trough-north",
            kind=SensorKind.WATER_LEVEL,
            ts=ts_ms + i * 60_000,
            value=40.0 + i,
            unit="%",
            raw=1200.0,
            volume_l=80.0,
        )
        for i in range(count)
    ]
    return reading_lines("chis-frailesca", "pi-1", readings)


def _samples(server: VictoriaMetricsServer) -> list[int]:
    urllib.request.urlopen(f"{server.url}/internal/force_flush", timeout=10).close()
    query = urllib.parse.urlencode({"match[]": '{__name__="water_level_value"}'})
    with urllib.request.urlopen(f"{server.url}/api/v1/export?{query}", timeout=10) as answer:
        series = [json.loads(line) for line in answer.read().decode().splitlines() if line]
    return sorted(ts for s in series for ts in s["timestamps"])


@pytest.fixture
def deduplicating(tmp_path: Path) -> Iterator[VictoriaMetricsServer]:
    server = VictoriaMetricsServer(
        data_dir=tmp_path / "vm-dedup", extra_args=("-dedup.minScrapeInterval=1ms",)
    )
    server.start()
    yield server
    server.stop()


def test_a_url_with_a_path_is_kept_as_a_vminsert_url_needs(
    victoria: VictoriaMetricsServer, tmp_path: Path
) -> None:
    now = int(time.time() * 1000) - 3_600_000
    writer = make_writer(
        CollectorSettings(
            influx_api="v2",
            influx_url=f"{victoria.url}/influx",
            influx_token=SecretStr("t"),
            influx_bucket="farmwatch",
        )
    )
    writer.write(_lines(now))
    assert wait_for(lambda: _samples(victoria)) == [now, now + 60_000, now + 120_000]


def test_a_redelivery_is_two_samples_unless_deduplication_is_on(
    victoria: VictoriaMetricsServer, deduplicating: VictoriaMetricsServer
) -> None:
    now = int(time.time() * 1000) - 3_600_000
    for server in (victoria, deduplicating):
        writer = make_writer(
            CollectorSettings(influx_api="v2", influx_url=server.url, influx_token=SecretStr("t"))
        )
        writer.write(_lines(now))
        writer.write(_lines(now))  # the same message delivered again
    assert wait_for(lambda: len(_samples(victoria)) == 6, what="both writes stored")
    urllib.request.urlopen(f"{deduplicating.url}/internal/force_merge", timeout=10).close()
    assert wait_for(lambda: len(_samples(deduplicating)) == 3, what="one sample per point")


def test_a_point_older_than_the_retention_is_accepted_and_dropped(
    victoria: VictoriaMetricsServer,
) -> None:
    """VictoriaMetrics' default retention is one month; an agent offline longer than that
    would see its backlog acknowledged and lost: set ``-retentionPeriod`` above it."""
    writer = make_writer(
        CollectorSettings(influx_api="v2", influx_url=victoria.url, influx_token=SecretStr("t"))
    )
    fresh = int(time.time() * 1000) - 3_600_000
    writer.write(_lines(fresh - 60 * DAY_MS))  # accepted (204): no error reaches the collector
    writer.write(_lines(fresh, count=1))
    assert wait_for(lambda: _samples(victoria)) == [fresh]
