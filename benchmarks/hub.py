"""Benchmark 9: readings/s through the hub (a three-node NATS JetStream cluster, R3) with 1, 2
and 3 collectors, against one collector on one Mosquitto, in the same run on the same batches.

The same edge batches as benchmark 1 (200 readings a message, zlib) go into the stream first;
then the collector processes start (the real ``farmwatch-collector``,
``FARMWATCH_COLLECTOR_TRANSPORT=jetstream``) and drain that backlog, as benchmark 1 measures a
fresh persistent session's queue drained by one collector on Mosquitto. The clock runs from the
first points in InfluxDB (polled every 10 ms) to the last, so the processes' start-up is not in
the figure; the readings of that first poll are left out of the count. The publish into the
cluster (JetStream acknowledgements, 64 in flight) is timed too, and the whole is repeated on a
cluster that syncs every write to disk (``sync_interval: always``) with one collector.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nats.errors
from pydantic import SecretStr

from benchmarks.common import FARM_FILES, REPO, Stack
from benchmarks.ingest import FARM, Workload
from farmwatch_local.nats import NatsCluster, nats_server_binary
from farmwatch_shared.hub.apply import apply_layout
from farmwatch_shared.hub.endpoint import NatsEndpoint
from farmwatch_shared.hub.layout import (
    ADMIN_USER,
    COLLECTOR_USER,
    MSG_ID_HEADER,
    STREAM,
    HubLimits,
    batch_msg_id,
    subject_of,
)
from farmwatch_shared.hub.link import NatsLink
from farmwatch_shared.influx import InfluxV1Writer, query_rows

LIMITS = HubLimits(max_bytes=512 * 1024**2)
IN_FLIGHT = 64


@dataclass(frozen=True)
class HubRun:
    """One run: readings/s published into the cluster and drained by the collectors."""

    publish_per_s: float
    drain_per_s: float


@dataclass
class HubBench:
    """A cluster, its administrator and a farm's connection."""

    cluster: NatsCluster
    admin: NatsLink
    farm: NatsLink
    workdir: Path

    async def _reset(self) -> None:
        client = self.admin.client
        await client.request(f"$JS.API.STREAM.DELETE.{STREAM}", b"", timeout=10)
        await apply_layout(client, LIMITS)

    async def _publish(self, workload: Workload) -> None:
        js = self.farm.client.jetstream()
        pending: set[asyncio.Task[object]] = set()
        for (topic, payload), batch in zip(workload.messages, workload.batches, strict=True):
            subject = subject_of(topic)
            assert subject is not None
            seqs = [r.seq for r in batch.readings]
            headers = {MSG_ID_HEADER: batch_msg_id(FARM, batch.agent, seqs[0], seqs[-1])}
            pending.add(
                asyncio.ensure_future(js.publish(subject, payload, timeout=30, headers=headers))
            )
            if len(pending) >= IN_FLIGHT:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
        for task in pending:
            await task

    def run(self, stack: Stack, workload: Workload, collectors: int) -> HubRun:
        """Publish ``workload`` into a fresh stream, drain it with ``collectors`` processes."""
        self.admin.submit(self._reset()).result(60)
        database, writer = stack.new_database(f"hub{collectors}")
        started = time.perf_counter()
        self.farm.submit(self._publish(workload)).result(300)
        publish_s = time.perf_counter() - started
        with self._collectors(stack, database, collectors):
            drained = _drain_rate(writer, workload.readings)
        return HubRun(workload.readings / publish_s, drained)

    @contextmanager
    def _collectors(self, stack: Stack, database: str, count: int) -> Iterator[None]:
        password = self.workdir / "collector.password"
        password.write_text(self.cluster.passwords[COLLECTOR_USER] + "\n")
        processes = []
        logs = []
        try:
            for i in range(count):
                env = {k: v for k, v in os.environ.items() if not k.startswith("FARMWATCH_")}
                env.update(
                    {
                        "FARMWATCH_COLLECTOR_TRANSPORT": "jetstream",
                        "FARMWATCH_COLLECTOR_NATS_SERVERS": ",".join(self.cluster.servers),
                        "FARMWATCH_COLLECTOR_NATS_USERNAME": COLLECTOR_USER,
                        "FARMWATCH_COLLECTOR_NATS_PASSWORD_FILE": str(password),
                        "FARMWATCH_COLLECTOR_CLIENT_ID": f"bench-collector-{i}",
                        "FARMWATCH_COLLECTOR_INFLUX_URL": stack.influx.url,
                        "FARMWATCH_COLLECTOR_INFLUX_DATABASE": database,
                        "FARMWATCH_COLLECTOR_INFLUX_CREATE_DATABASE": "false",
                        "FARMWATCH_COLLECTOR_FARM_DIR": str(FARM_FILES),
                        "FARMWATCH_COLLECTOR_QUARANTINE_PATH": str(
                            self.workdir / f"q-{secrets.token_hex(4)}.sqlite3"
                        ),
                        "FARMWATCH_COLLECTOR_STATS_INTERVAL_S": "3600",
                    }
                )
                log = self.workdir / f"collector-{database}-{i}.log"
                logs.append(log)
                with log.open("wb") as out:
                    processes.append(
                        subprocess.Popen(
                            [sys.executable, "-m", "collector.cli"],
                            env=env,
                            cwd=REPO,
                            stdout=out,
                            stderr=subprocess.STDOUT,
                        )
                    )
            yield
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(30)


def _points(writer: InfluxV1Writer) -> int:
    answer = writer.query("SELECT COUNT(value) FROM water_level, soil_moisture, rain")
    return sum(int(row.get("count", 0)) for row in query_rows(answer))


def _drain_rate(writer: InfluxV1Writer, expected: int, timeout_s: float = 600) -> float:
    """Readings/s from the first points seen in the database to the last."""
    deadline = time.monotonic() + timeout_s
    first: tuple[float, int] | None = None
    while True:
        total = _points(writer)
        now = time.perf_counter()
        if first is None and total > 0:
            first = (now, total)
        if total >= expected and first is not None and now > first[0]:
            return (total - first[1]) / (now - first[0])
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {total} of {expected} points after {timeout_s} s")
        time.sleep(0.01)


def server_version() -> str:
    """The nats-server version the bench runs."""
    out = subprocess.run(
        [nats_server_binary(), "--version"], capture_output=True, text=True, check=False
    )
    return out.stdout.strip().rsplit(" ", 1)[-1]


@contextmanager
def hub_bench(workdir: Path, sync_interval: str = "default") -> Iterator[HubBench]:
    """A three-node cluster (no TLS, as the Mosquitto baseline) with the hub's users."""
    cluster = NatsCluster(workdir, [FARM], size=3, tls=False, sync_interval=sync_interval)
    cluster.start()
    links = []
    try:
        for user in (ADMIN_USER, FARM):
            link = NatsLink(
                NatsEndpoint(
                    cluster.servers, f"bench-{user}", user, SecretStr(cluster.passwords[user])
                )
            )
            link.start()
            if not link.wait_connected(20):
                raise RuntimeError(f"{user} could not connect to the bench cluster")
            links.append(link)
        links[0].submit(apply_layout(links[0].client, LIMITS)).result(30)
        yield HubBench(cluster, links[0], links[1], workdir)
    except nats.errors.Error as exc:
        raise RuntimeError(f"bench cluster: {exc}") from exc
    finally:
        for link in links:
            link.stop()
        cluster.stop()
