"""The hub under fire (issue 15, acceptance 1): a real three-node NATS JetStream cluster on
loopback with TLS to clients and between nodes, two collectors sharing the readings consumer,
one alerting service on its pinned consumer, and an emulated farm's real agent on the JetStream
uplink. While the microcontroller samples, the node leading the stream is SIGKILLed, then a
collector; then both come back. Every sample the microcontroller produced must be in InfluxDB
exactly once; the messages delivered again (a killed collector's unacknowledged ones) and the
batches the agent sent again are counted, and shown harmless by that same check.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

from support.alerts import FakeGateway
from support.faults import FARM, FAULT_FARM_FILE, Rig, assert_exactly_once
from support.harness import ChildProcess
from support.hub import Hub, collector_counts, hub_agent, hub_alerts, hub_collector, running_hub
from support.servers import Influx
from support.waiting import wait_for

from farmwatch_emulators.mcu import McuEmulator
from farmwatch_emulators.pty_link import PtyLink
from farmwatch_shared.hub.apply import HubApiError
from farmwatch_shared.hub.layout import ALERTS_CONSUMER, COLLECTOR_CONSUMER, STREAM

ALERTING = """
[[alerts]]
id = "probe-dry"
type = "soil_moisture_below"
sensor = "probe"
threshold_pct = 12
for_s = 0

[[contacts]]
name = "Encargado"
phone = "+529510000001"
language = "es"
role = "primary"
"""
SAMPLES = 2400
PER_SECOND = 100.0


def _pulling(process: ChildProcess) -> bool:
    return "Suscrito / subscribed" in process.log()


def _held(hub: Hub) -> bool:
    """Messages stay unacknowledged for a second: the frozen collector holds them (the live
    one acknowledges within milliseconds)."""
    if hub.consumer(STREAM, COLLECTOR_CONSUMER)["num_ack_pending"] == 0:
        return False
    time.sleep(1.0)
    return bool(hub.consumer(STREAM, COLLECTOR_CONSUMER)["num_ack_pending"] > 0)


def _freeze_holding(hub: Hub, collector: ChildProcess, attempts: int = 5) -> None:
    """Freeze the collector until it is seen holding messages (it may be between two pulls,
    or reconnecting, when first frozen: then it is thawed a moment and frozen again)."""
    for _ in range(attempts):
        collector.freeze()
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:
            if _held(hub):
                return
            time.sleep(0.2)
        collector.thaw()
        time.sleep(1.0)
    raise AssertionError("the frozen collector never held a message")


def _leader(hub: Hub, other_than: str | None = None) -> str | None:
    """The stream's leader, or None while there is none (an election) or the cluster is too
    busy to say within its API timeout (``nats: timeout`` on a loaded machine): for
    ``wait_for``."""
    try:
        leader = hub.stream_leader()
    except (HubApiError, TimeoutError):
        return None
    return leader if leader and leader != other_than else None


def test_every_reading_once_through_a_leader_kill_and_a_collector_kill(
    tmp_path: Path, influx: Influx, gateway: FakeGateway
) -> None:
    started = time.monotonic()
    farm_dir = tmp_path / "farms"
    farm_dir.mkdir()
    farm_file = farm_dir / f"{FARM}.toml"
    farm_file.write_text(FAULT_FARM_FILE + ALERTING)
    with running_hub(tmp_path, [FARM]) as hub:
        # pulls of 5 messages, so the two collectors take turns every second or so
        collectors = [
            hub_collector(hub, influx, farm_dir, tmp_path, n, receive_maximum="5")
            for n in ("a", "b")
        ]
        alerts = hub_alerts(hub, farm_dir, gateway.url, tmp_path, "a")
        link = PtyLink(tmp_path / "ttyFARM")
        mcu = McuEmulator(link, interval_s=1, resend_after_s=2.0)
        agent = hub_agent(hub, farm_file, link.path, tmp_path, FARM)
        processes = [*collectors, alerts, agent]
        try:
            for process in (*collectors, alerts):
                process.start()
            for process in (*collectors, alerts):
                wait_for(partial(_pulling, process), what="pulling")
            mcu.start()
            agent.start()
            wait_for(lambda: mcu.syncs_received > 0, what="agent opened the port")
            rig = Rig(mcu, link, agent, collectors[0])
            leaders: list[str] = []

            def faults() -> None:
                time.sleep(3.0)
                leaders.append(wait_for(lambda: _leader(hub), what="stream leader"))
                hub.cluster.kill(leaders[0])
                leaders.append(wait_for(lambda: _leader(hub, leaders[0]), what="new leader"))
                time.sleep(2.0)
                # frozen first, so that it surely dies holding messages it took and never
                # acknowledged (a collector stuck in a write), then killed
                _freeze_holding(hub, collectors[0])
                collectors[0].kill()
                time.sleep(3.0)
                hub.cluster.restart(leaders[0])
                collectors[0].start()

            failed: list[BaseException] = []

            def faults_or_failure() -> None:
                try:
                    faults()
                except BaseException as exc:
                    failed.append(exc)
                    raise

            rig.produce(SAMPLES, PER_SECOND, faults_or_failure)
            assert not failed, f"the faults did not all happen: {failed}"
            assert_exactly_once(influx, rig.produced)
            assert leaders[1] != leaders[0]
            wait_for(
                lambda: hub.consumer(STREAM, COLLECTOR_CONSUMER)["num_ack_pending"] == 0,
                what="collectors acknowledged everything",
            )
            alerting = hub.consumer(STREAM, ALERTS_CONSUMER)
            wait_for(
                lambda: hub.consumer(STREAM, ALERTS_CONSUMER)["num_pending"] == 0,
                what="the alerting service read everything",
            )
            wait_for(lambda: gateway.requests, what="the alert's SMS")
        finally:
            for process in processes:
                process.stop()
            mcu.stop()
            link.close()
    written = redelivered = 0
    for collector in collectors:
        points, again = collector_counts(collector.log())
        written += points
        redelivered += again
    agent_log = agent.log()
    print(
        f"\nhub failover: {SAMPLES} samples, node {leaders[0]} (stream leader, then "
        f"{leaders[1]}) and collector a killed; {SAMPLES} stored once; {redelivered} messages "
        f"delivered again (written again, stored once); {written} points as the collectors "
        f"last logged (a killed run's last second is not logged); "
        f"agent: {agent_log[agent_log.rfind('hub uplink:') :].splitlines()[0]}; alerting "
        f"consumer ack floor {alerting['ack_floor']['stream_seq']}; "
        f"{time.monotonic() - started:.0f} s"
    )
    assert "hub uplink:" in agent_log
    assert redelivered > 0, "the killed collector's unacknowledged messages came back"
    assert time.monotonic() - started < 120
