"""Clock sanity at the edge: readings taken before the clock is trusted are held, then re-timed."""

from __future__ import annotations

import time
from pathlib import Path

from support.clocks import FrozenClock
from support.harness import collector_settings, start_agent, start_collector
from support.sensors import PROBE
from support.servers import Broker, Influx
from support.waiting import wait_for

from edge.clock_guard import PLAUSIBLE_AFTER_MS, ClockGuard
from farmwatch_shared.contract import ReadingFlag

BOOTED_AT = 86_400_000  # 1970-01-02: a Pi without a real-time clock, before NTP
SYNCED_AT = 1_795_000_000_000


class Ntp:
    """Stands in for systemd-timesyncd's answer."""

    def __init__(self) -> None:
        self.synced = False

    def __call__(self) -> bool:
        return self.synced


def test_readings_are_held_while_the_clock_is_wrong_then_re_timed_and_flagged(
    broker: Broker, influx: Influx, tmp_path: Path
) -> None:
    collector = start_collector(collector_settings(broker, influx))
    clock = FrozenClock(BOOTED_AT)
    ntp = Ntp()
    guard = ClockGuard(clock, ntp, recheck_s=0.05)
    agent = start_agent(broker, tmp_path, sensors=[PROBE], clock=clock, clock_guard=guard)
    try:
        taken_at = []
        for i in range(3):
            taken_at.append(time.monotonic())
            agent.mcu.sample("S1", float(i))
            time.sleep(0.2)
        wait_for(lambda: agent.outbox.last_seq() == 2, what="three readings committed")
        assert agent.outbox.held() == 3
        assert not agent.agent.status().clock_synced
        time.sleep(0.5)
        assert agent.transport.uplink.messages_sent == 0  # nothing went out with a 1970 time

        clock.now = SYNCED_AT  # NTP synchronised: the wall clock jumps
        ntp.synced = True
        synced_mono = time.monotonic()
        wait_for(lambda: influx.count("soil_moisture") == 3, what="held readings released")
        rows = influx.query("SELECT raw, flags, seq FROM soil_moisture")
        assert [r["raw"] for r in rows] == [0.0, 1.0, 2.0]
        assert all(r["flags"] == ReadingFlag.CLOCK_CORRECTED for r in rows)
        for row, taken in zip(rows, taken_at, strict=True):
            # re-timed from the monotonic clock: (synced time) − (how long before the sync)
            expected = SYNCED_AT - (synced_mono - taken) * 1000
            assert abs(row["time"] - expected) < 300, (row, expected)
        assert agent.outbox.held() == 0

        agent.mcu.sample("S1", 3.0)
        wait_for(lambda: influx.count("soil_moisture") == 4, what="a reading after the sync")
        (latest,) = influx.query("SELECT raw, flags FROM soil_moisture WHERE raw = 3")
        assert latest["time"] == SYNCED_AT
        assert latest["flags"] is None
        assert agent.agent.status().clock_synced
    finally:
        agent.stop()
        collector.stop()


def test_a_time_before_this_release_is_never_trusted() -> None:
    clock = FrozenClock(PLAUSIBLE_AFTER_MS - 1)
    assert not ClockGuard(clock).trusted()
    clock.now = PLAUSIBLE_AFTER_MS + 1
    assert ClockGuard(clock).trusted()
    assert not ClockGuard(clock, lambda: False).trusted()
    assert not ClockGuard(clock, lambda: None).trusted()  # cannot tell: keep holding
