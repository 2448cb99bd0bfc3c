"""The supervisor: a worker that raises or returns early stops the service, logged once."""

from __future__ import annotations

import logging
import threading

import pytest

from farmwatch_shared.supervisor import EX_SOFTWARE, Supervisor

LOG = logging.getLogger("test.supervisor")


def runs_until_stopped(stop: threading.Event) -> None:
    stop.wait()


def test_a_worker_that_raises_stops_the_service_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = threading.Event()
    supervisor = Supervisor("farmwatch-test", stop, LOG)
    go = threading.Event()

    def crashes(stop: threading.Event) -> None:
        go.wait(5)
        raise OSError("disk I/O error")

    supervisor.start("healthy", runs_until_stopped)
    supervisor.start("reader", crashes)
    assert supervisor.alive()
    assert supervisor.failed is None
    with caplog.at_level(logging.CRITICAL, logger=LOG.name):
        go.set()
        assert stop.wait(5), "the dead worker did not stop the service"
        supervisor.join(5)
    assert supervisor.failed == "reader: OSError: disk I/O error"
    assert not supervisor.alive()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "farmwatch-test: Hilo reader terminó / thread reader died: OSError: disk I/O error"
    ]
    assert caplog.records[0].exc_info is not None  # the traceback goes with it
    assert EX_SOFTWARE == 70


def test_a_worker_that_returns_while_the_service_runs_is_a_death() -> None:
    stop = threading.Event()
    supervisor = Supervisor("farmwatch-test", stop, LOG)
    supervisor.start("healthy", runs_until_stopped)
    supervisor.start("poller", lambda stop: None)
    assert stop.wait(5)
    supervisor.join(5)
    assert supervisor.failed == "poller: returned while the service was running"
    assert not supervisor.alive()


def test_workers_ending_because_the_service_stops_are_no_failure() -> None:
    stop = threading.Event()
    supervisor = Supervisor("farmwatch-test", stop, LOG)
    for name in ("a", "b", "c"):
        supervisor.start(name, runs_until_stopped)
    assert supervisor.alive()
    stop.set()
    supervisor.join(5)
    assert supervisor.failed is None
    assert not supervisor.alive()  # none is running any more


def test_only_the_first_death_is_the_failure(caplog: pytest.LogCaptureFixture) -> None:
    stop = threading.Event()
    supervisor = Supervisor("farmwatch-test", stop, LOG)
    first_died = threading.Event()

    def first(stop: threading.Event) -> None:
        first_died.set()
        raise RuntimeError("first")

    def second(stop: threading.Event) -> None:
        stop.wait()
        raise RuntimeError("second, while stopping")

    with caplog.at_level(logging.CRITICAL, logger=LOG.name):
        supervisor.start("second", second)
        supervisor.start("first", first)
        supervisor.join(5)
    assert supervisor.failed == "first: RuntimeError: first"
    assert len(caplog.records) == 2
    assert "after an earlier failure" in caplog.records[1].getMessage()


def test_two_workers_may_not_share_a_name() -> None:
    stop = threading.Event()
    supervisor = Supervisor("farmwatch-test", stop, LOG)
    supervisor.start("a", runs_until_stopped)
    with pytest.raises(ValueError, match="already started"):
        supervisor.start("a", runs_until_stopped)
    stop.set()
    supervisor.join(5)
