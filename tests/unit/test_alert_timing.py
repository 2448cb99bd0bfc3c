"""Alert timing that survives what clocks and senders do: durations on monotonic time across
wall-clock steps and restarts (finding 16), future-dated readings (13), long silent rules and
pruning (14), and the durability of the alert database (9)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.alert_feed import FARM, MIN, T0, Feed, level_rule

from collector.alerts.store import AlertStore
from farmwatch_shared.contract import MAX_FUTURE_MS, AgentStatus, ContractError
from farmwatch_shared.farm.alert_rules import Silent

HOUR_MS = 3_600_000


def test_a_wall_clock_step_forward_does_not_shorten_for_s(tmp_path: Path) -> None:
    feed = Feed(tmp_path, level_rule(for_s=600))
    feed.reading("trough-north", 20, at_min=0)
    assert feed.states() == ["pending"]
    feed.clock.step_wall(2 * HOUR_MS)  # NTP corrects a clock two hours behind
    feed.engine.tick()
    assert feed.states() == ["pending"]
    assert feed.sms() == []
    feed.clock.now += 9 * MIN
    feed.engine.tick()
    assert feed.sms() == []  # 9 minutes have passed, not 129
    feed.clock.now += 1 * MIN
    feed.engine.tick()
    assert len(feed.sms("firing")) == 1


def test_a_wall_clock_step_backward_does_not_stretch_reminders(tmp_path: Path) -> None:
    feed = Feed(tmp_path, level_rule(for_s=0, reminder_interval_s=1800))
    feed.reading("trough-north", 10, at_min=0)
    assert len(feed.sms("firing")) == 1
    feed.clock.step_wall(-6 * HOUR_MS)  # the clock is set back six hours
    feed.clock.now += 30 * MIN
    feed.engine.tick()
    assert len(feed.sms("reminder")) == 1  # 30 minutes passed: the reminder is due


def test_durations_survive_a_restart_and_a_reboot_with_a_clock_step(tmp_path: Path) -> None:
    feed = Feed(tmp_path, level_rule(for_s=0, reminder_interval_s=3600))
    feed.reading("trough-north", 10, at_min=0)
    feed.clock.now += 20 * MIN
    feed.restart()  # same boot: the monotonic clock goes on
    feed.clock.step_wall(-3 * HOUR_MS)
    feed.clock.now += 39 * MIN
    feed.engine.tick()
    assert feed.sms("reminder") == []  # 59 minutes
    feed.clock.now += 1 * MIN
    feed.engine.tick()
    assert len(feed.sms("reminder")) == 1  # 60 minutes, whatever the wall clock says
    # a reboot: monotonic time starts again; the downtime is taken from the wall clock,
    # never negative
    feed.clock.now += 10 * MIN
    feed.restart(boot_id="boot-2")
    feed.clock.step_wall(-5 * HOUR_MS)  # and the rebooted machine's clock is behind
    feed.restart(boot_id="boot-3")
    feed.clock.now += 49 * MIN
    feed.engine.tick()
    assert len(feed.sms("reminder")) == 1  # 59 minutes since the reminder (none lost below 0)
    feed.clock.now += 1 * MIN
    feed.engine.tick()
    assert len(feed.sms("reminder")) == 2


def test_a_future_dated_reading_is_not_the_latest_sample(tmp_path: Path) -> None:
    feed = Feed(tmp_path, level_rule(for_s=0))
    # a reading stamped years ahead (a sensor's broken clock) with a healthy level
    feed.reading("trough-north", 80, at_min=0, ts=T0 + 3 * 365 * 24 * HOUR_MS)
    assert feed.problems.count("implausible_time") == 1
    feed.reading("trough-north", 10, at_min=1)  # the real level
    assert len(feed.sms("firing")) == 1
    assert feed.store.latest(FARM, "trough-north") == (T0 + MIN, 10.0, 400.0)


def test_a_future_dated_status_does_not_keep_an_agent_alive(tmp_path: Path) -> None:
    feed = Feed(tmp_path, Silent(id="quiet", type="silent", agent="pi-1", after_s=1800))
    with pytest.raises(ContractError) as refused:  # the service quarantines the message
        feed.engine.ingest_status(
            AgentStatus(1, FARM, "pi-1", "online", ts=T0 + MAX_FUTURE_MS * 10)
        )
    assert refused.value.cause == "implausible_time"
    feed.tick(at_min=31)
    assert len(feed.sms("firing")) == 1


def test_a_silent_rule_longer_than_a_day_fires_on_time(tmp_path: Path) -> None:
    rule = Silent(id="quiet", type="silent", sensor="trough-north", after_s=48 * 3600)
    feed = Feed(tmp_path, rule)  # watching since T0
    feed.reading("trough-north", 60, at_min=24 * 60)  # the last reading, a day later
    for hour in range(25, 72):
        feed.tick(at_min=hour * 60)  # prunes every 10 minutes of wall time
        assert feed.sms() == [], f"fired after {hour - 24} h of silence"
    feed.tick(at_min=72 * 60)
    assert len(feed.sms("firing")) == 1


def test_the_alert_database_syncs_every_commit(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "alerts.sqlite3", Feed(tmp_path, level_rule()).clock)
    try:
        # an SMS is deleted from the SIM right after its row commits: that commit must be on disk
        assert store.durability() == ("wal", "full")
    finally:
        store.close()
