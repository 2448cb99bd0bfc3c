"""Benchmark 5 on the hub: the data bill of an agent on ``transport=jetstream``.

The same ``farmwatch-edge`` process, emulated hardware and counting proxy as the MQTT rows
(``benchmarks/bill.py``), with the settings of docs/scale-out.md ("Moving a farm": the
transport, one ``tls://`` URL, the farm's user and the hub's CA; everything else at its
default), to a real ``nats-server`` (``farmwatch_local.nats``) with TLS to clients
(certificates from the shipped ``deploy/nats/make-tls-certs.sh``), configured by the shipped
node configuration (``farmwatch_shared.hub.server_config``), the stream, bucket and consumers
created by the shipped ``farmwatch-hub apply`` with its defaults except ``--replicas 1``.

One node is enough for the agent's bytes: replication happens between the nodes, not on the
farm's link; a three-node cluster adds the other nodes' client URLs to the server's INFO at
connect (about 60 bytes each) and INFO updates when nodes come and go. The window and the
link drop are measured as on MQTT; the agent's presence put plays the status's part (the one
it puts on connect marks the reconnect done). The full TLS handshake is measured on a second
node (its own process, so its own ticket keys; same CA, users and definitions), as the MQTT
rows use the broker's second listener. Nobody consumes for real: on the hub a batch leaves the
outbox on the stream's acknowledgement, the collector sends the agent nothing. The
administrator watches each node with unacknowledged pulls of its own (not through the proxy).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import shutil
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from pydantic import SecretStr

from benchmarks.bill import AgentRun, BillConfig, LinkBill, Traffic, measure_agent
from farmwatch_local.nats import NatsCluster
from farmwatch_shared.contract import ContractError, decode_message
from farmwatch_shared.hub.endpoint import NatsEndpoint
from farmwatch_shared.hub.layout import (
    ADMIN_USER,
    PRESENCE_FILTER,
    PRESENCE_STREAM,
    READINGS_FILTER,
    STREAM,
    HubLimits,
    topic_of,
)
from farmwatch_shared.hub.link import NatsLink

FETCH_WAIT_S = 1.0


class HubWatch:
    """The administrator's pulls on each node's readings stream and presence bucket: each
    farm's batches and presence puts as the hub stored them (``Traffic``, as ``BrokerWatch``)."""

    def __init__(self, nodes: list[NatsCluster]) -> None:
        self.farms: dict[str, Traffic] = defaultdict(Traffic)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._links: list[NatsLink] = []
        self._pulls: list[concurrent.futures.Future[None]] = []
        for cluster in nodes:
            link = NatsLink(
                NatsEndpoint(
                    cluster.servers,
                    "bench-bill-watch",
                    ADMIN_USER,
                    SecretStr(cluster.passwords[ADMIN_USER]),
                    cluster.ca_file,
                )
            )
            link.start()
            self._links.append(link)
            if not link.wait_connected(20):
                raise RuntimeError("the bill's watcher could not reach the hub")
            for stream, subject in ((STREAM, READINGS_FILTER), (PRESENCE_STREAM, PRESENCE_FILTER)):
                pull = link.submit(_subscribe(link, stream, subject)).result(20)
                self._pulls.append(link.submit(self._pull(pull)))

    async def _pull(self, pull: JetStreamContext.PullSubscription) -> None:
        while not self._stopping.is_set():
            try:
                messages = await pull.fetch(100, timeout=FETCH_WAIT_S)
            except TimeoutError:  # nats-py raises its own and asyncio's
                continue
            now = time.monotonic()
            for message in messages:
                self._count(message.subject, message.data, now)
        await pull.unsubscribe()

    def _count(self, subject: str, data: bytes, now: float) -> None:
        topic = topic_of(subject)
        if topic is None or not data:  # an aged-out key's marker has no data
            return
        farm = topic.split("/")[2]
        with self._lock:
            traffic = self.farms[farm]
            if topic.endswith("/status"):
                traffic.status_messages += 1
                traffic.status_times.append(now)
                return
            with contextlib.suppress(ContractError):
                traffic.readings += len(getattr(decode_message(topic, data), "readings", ()))
            traffic.readings_messages += 1
            traffic.batch_times.append(now)

    def snapshot(self, farm: str) -> Traffic:
        """A copy of a farm's counts (raises if a pull stopped: the counts would be short)."""
        for pull in self._pulls:
            if pull.done():
                raise RuntimeError(f"the bill's watcher stopped pulling: {pull.exception()!r}")
        with self._lock:
            return self.farms[farm].copy()

    def close(self) -> None:
        """Stop pulling and disconnect."""
        self._stopping.set()
        concurrent.futures.wait(self._pulls, timeout=FETCH_WAIT_S + 5)
        for link in self._links:
            link.stop()


async def _subscribe(
    link: NatsLink, stream: str, subject: str
) -> JetStreamContext.PullSubscription:
    """An ephemeral pull consumer of what is stored from now on, never acknowledged."""
    config = ConsumerConfig(
        ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.NEW, inactive_threshold=300
    )
    return await link.client.jetstream().pull_subscribe(subject, stream=stream, config=config)


def apply_shipped_layout(cluster: NatsCluster, workdir: Path) -> None:
    """``farmwatch-hub apply`` with its defaults on a one-node cluster (``--replicas 1``)."""
    password = workdir / f"{ADMIN_USER}.password"
    password.write_text(cluster.passwords[ADMIN_USER] + "\n")
    password.chmod(0o600)
    assert cluster.ca_file is not None
    done = subprocess.run(
        [
            *(sys.executable, "-m", "collector.hub_cli", "apply", "--servers", cluster.servers[0]),
            *("--password-file", str(password), "--ca-file", str(cluster.ca_file)),
            *("--replicas", "1"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"farmwatch-hub apply: {done.stdout}{done.stderr}")


class HubRig:
    """Two one-node hubs (the second for the full TLS handshake), the watcher and the agents."""

    def __init__(self, workdir: Path, cfg: BillConfig) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.cfg = cfg
        store = 2 * HubLimits().max_bytes  # the stream and the bucket, as `apply` sizes them
        self.node = NatsCluster(
            workdir / "node",
            cfg.hub_farms,
            size=1,
            tls=True,
            max_file_store=store,
            client_ping_interval_s=cfg.hub_server_ping_s,
        )
        self.second = NatsCluster(
            workdir / "second",
            cfg.hub_farms,
            size=1,
            tls=True,
            max_file_store=store,
            client_ping_interval_s=cfg.hub_server_ping_s,
            passwords=dict(self.node.passwords),
        )
        self.watch: HubWatch | None = None
        self.runs: list[AgentRun] = []

    def start(self) -> list[Callable[[], LinkBill]]:
        """Everything, in dependency order; the measurements to run."""
        self.node.start()
        certs = self.second.data_dir / "certs"
        certs.mkdir(parents=True)
        for name in ("ca.crt", "ca.key"):  # the script keeps a CA it finds: the same one
            shutil.copy2(self.node.data_dir / "certs" / name, certs / name)
        self.second.start()
        for cluster in (self.node, self.second):
            apply_shipped_layout(cluster, cluster.data_dir)
        self.watch = HubWatch([self.node, self.second])
        assert self.node.ca_file is not None
        self.runs = [
            AgentRun(
                farm,
                self.node.nodes[0].client_port,
                self.node.ca_file,
                self.node.passwords[farm],
                self.workdir,
                self.cfg,
                transport="jetstream",
            )
            for farm in self.cfg.hub_farms
        ]
        for run in self.runs:
            run.start()
        cfg = replace(
            self.cfg,
            batches=self.cfg.hub_batches,
            full_handshake_port=self.second.nodes[0].client_port,
        )
        return [partial(measure_agent, run, self.watch, cfg) for run in self.runs]

    def stop(self) -> None:
        """Everything that was started, in reverse order."""
        for run in self.runs:
            run.stop()
        if self.watch is not None:
            self.watch.close()
        self.second.stop()
        self.node.stop()
