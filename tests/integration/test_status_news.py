"""The agent's status on a real broker (edge/status_schedule.py): on connect, then only with a
batch when it has news; a quiet agent's batches go without one."""

from __future__ import annotations

import time
from pathlib import Path

from support.harness import RunningAgent, collector_settings, start_agent, start_collector
from support.sensors import PROBE
from support.servers import Broker, Influx
from support.waiting import wait_for

from farmwatch_shared.contract import decode_status, status_topic


def send_batch(agent: RunningAgent, raw: float) -> None:
    """One reading, then wait until the agent published the batch that carries it."""
    uplink = agent.transport.uplink
    sent = uplink.messages_sent
    agent.mcu.sample("S1", raw)
    wait_for(lambda: uplink.messages_sent > sent, what="a batch")


def test_news_goes_with_the_next_batch_and_no_news_stays_home(
    broker: Broker, influx: Influx, tmp_path: Path
) -> None:
    collector = start_collector(collector_settings(broker, influx))
    statuses = broker.watch(status_topic("oax-mixteca", "pi-1"), "test-status-watcher")
    agent = start_agent(
        broker, tmp_path, sensors=[PROBE], batch_max_age_s=0.5, status_interval_s=3600.0
    )
    try:
        wait_for(lambda: statuses.payloads, what="the status put on connect")
        first = decode_status(statuses.payloads[-1])
        assert first.state == "online"
        assert first.rejected_lines == 0
        put_at_start = len(statuses.payloads)

        for raw in (100.0, 101.0, 102.0):  # three batches without news
            send_batch(agent, raw)
        wait_for(lambda: influx.count("soil_moisture") == 3, what="the batches stored")
        time.sleep(0.3)
        assert len(statuses.payloads) == put_at_start

        agent.mcu.send_raw(b"$R,S1,not-a-number*00\n")  # refused: news, for the next batch
        wait_for(lambda: agent.problems.total() == 1, what="the line refused")
        time.sleep(0.3)
        assert len(statuses.payloads) == put_at_start  # no batch yet: the news waits

        send_batch(agent, 104.0)
        wait_for(lambda: len(statuses.payloads) > put_at_start, what="the status with it")
        news = decode_status(statuses.payloads[-1])
        assert news.rejected_lines == 1
        assert news.state == "online"

        send_batch(agent, 105.0)
        time.sleep(0.3)
        assert len(statuses.payloads) == put_at_start + 1  # told once
    finally:
        agent.stop()
        statuses.close()
        collector.stop()
