"""The agent's status timing (edge/status_schedule.py): at once on a connect, with a batch when
it has news, else every heartbeat."""

from __future__ import annotations

import msgspec
import pytest

from edge.status_schedule import StatusNews, StatusSchedule, magnitude
from farmwatch_shared.contract import AgentStatus, DeviceHealth

BATCH = 200
TS = 1_795_000_000_000
QUIET = AgentStatus(
    v=1,
    farm="oax-mixteca",
    agent="pi-1",
    state="online",
    ts=TS,
    version="1.0.0",
    outbox_backlog=40,
    devices=(DeviceHealth(id="trough-hill", rssi_dbm=-110.0, battery_v=3.6),),
)


def news(**changes: object) -> StatusNews:
    return StatusNews.of(msgspec.structs.replace(QUIET, **changes), BATCH)


def test_a_connect_or_a_due_heartbeat_puts_whatever_the_news() -> None:
    schedule = StatusSchedule(heartbeat_s=3600.0, now=100.0)
    assert schedule.must_put(100.0, connected=True)
    assert not schedule.must_put(3699.0, connected=False)
    assert schedule.must_put(3700.0, connected=False)
    schedule.put(3700.0, news())
    assert not schedule.must_put(7299.0, connected=False)  # a put restarts the heartbeat
    assert schedule.must_put(7300.0, connected=False)


def test_the_first_status_is_news_and_an_unchanged_one_is_not() -> None:
    schedule = StatusSchedule(heartbeat_s=3600.0, now=0.0)
    assert schedule.is_news(news())
    schedule.put(0.0, news())
    assert not schedule.is_news(news())


@pytest.mark.parametrize(
    "changes",
    [
        {"ts": TS + 3_600_000},  # time passes
        {"outbox_backlog": 120},  # readings come and go between batches
        {"outbox_backlog": BATCH},  # a full batch waiting is not behind yet
        {"devices": (DeviceHealth(id="trough-hill", rssi_dbm=-104.0, battery_v=3.5),)},
    ],
)
def test_what_changes_all_the_time_is_no_news(changes: dict[str, object]) -> None:
    schedule = StatusSchedule(heartbeat_s=3600.0, now=0.0)
    schedule.put(0.0, news())
    assert not schedule.is_news(news(**changes))


@pytest.mark.parametrize(
    "changes",
    [
        {"state": "offline"},
        {"version": "1.0.1"},
        {"dropped_total": 1},  # the outbox was full: readings lost
        {"rejected_lines": 1},  # a sensor or the microcontroller sends garbage
        {"clock_synced": False},
        {"outbox_backlog": BATCH + 1},  # the uplink fell behind
        {"devices": (DeviceHealth(id="trough-hill", lost_uplinks=1),)},
        {"devices": (DeviceHealth(id="trough-hill", refused=1),)},
        {"devices": (DeviceHealth(id="trough-hill", rejoins=1),)},
        {"devices": ()},
    ],
)
def test_what_an_operator_acts_on_is_news(changes: dict[str, object]) -> None:
    schedule = StatusSchedule(heartbeat_s=3600.0, now=0.0)
    schedule.put(0.0, news())
    assert schedule.is_news(news(**changes))


def test_a_counter_is_news_at_each_power_of_two() -> None:
    schedule = StatusSchedule(heartbeat_s=3600.0, now=0.0)
    told = []
    for rejected in range(1, 70):  # a sensor that sends garbage all day
        if schedule.is_news(news(rejected_lines=rejected)):
            schedule.put(float(rejected), news(rejected_lines=rejected))
            told.append(rejected)
    assert told == [1, 2, 4, 8, 16, 32, 64]
    assert [magnitude(n) for n in (0, 1, 2, 3, 4, 7, 8)] == [0, 1, 2, 2, 3, 3, 4]


def test_a_backlog_that_caught_up_is_news_once() -> None:
    schedule = StatusSchedule(heartbeat_s=3600.0, now=0.0)
    schedule.put(0.0, news(outbox_backlog=11_520))  # back after two days offline
    assert not schedule.is_news(news(outbox_backlog=9_000))  # still draining
    assert schedule.is_news(news(outbox_backlog=30))
    schedule.put(60.0, news(outbox_backlog=30))
    assert not schedule.is_news(news(outbox_backlog=70))
