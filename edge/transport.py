"""What the edge agent needs from its transport (MQTT, ``edge/transport_mqtt.py``, or the hub,
``edge/transport_hub.py``): the link started and stopped, whether it is connected now, the
uplink the agent pumps, and the status put when the agent's schedule says
(``edge/status_schedule.py``) and once more at a clean stop.

The agent (``edge/agent.py``) owns the rest: its threads under one supervisor, the clock
correction of held readings, when a status is due. A transport's own threads (paho's network
thread, the hub link's event loop) only set ``Signals`` and queue events for the uplink.
"""

from __future__ import annotations

import threading
from typing import Protocol, TypedDict

from edge.outbox import Outbox
from edge.urgency import Urgency
from farmwatch_shared.clock import Clock
from farmwatch_shared.contract import AgentStatus
from farmwatch_shared.problems import ProblemLog


class UplinkArgs(TypedDict):
    """The arguments both uplinks (``Uplink``, ``JetStreamUplink``) take, passed as keywords."""

    farm: str
    agent: str
    outbox: Outbox
    clock: Clock
    problems: ProblemLog
    batch_max_readings: int
    batch_max_age_s: float
    compress: bool
    window: int
    """Batch messages in flight at most (``inflight_window``)."""
    payload_limit: int
    payload_version: int
    urgency: Urgency


class Signals:
    """How other threads tell the agent's uplink thread to look again: ``wake`` (something to
    do), ``status_due`` (a connection: put the status now). The uplink thread clears them."""

    def __init__(self) -> None:
        self.wake = threading.Event()
        self.status_due = threading.Event()

    def connected(self) -> None:
        """A connection came up: the status is due at once."""
        self.status_due.set()
        self.wake.set()


class UplinkPump(Protocol):
    """The part of an uplink the agent drives (on its uplink thread)."""

    @property
    def inflight(self) -> int:
        """Messages published and not yet acknowledged."""

    @property
    def messages_sent(self) -> int:
        """Batch messages published so far (the agent puts a status with news after one)."""

    def pump(self) -> bool:
        """Process events and publish what is due; return whether anything happened."""

    def rewind(self) -> None:
        """Scan the outbox from the start again (held readings were released)."""


class Transport(Protocol):
    """The link the agent's readings and status go over."""

    @property
    def signals(self) -> Signals:
        """What this link's thread sets for the agent's uplink thread (the reader's too)."""

    @property
    def uplink(self) -> UplinkPump:
        """The uplink moving the outbox's readings over this link."""

    @property
    def connected(self) -> bool:
        """Connected now."""

    def start(self) -> None:
        """Start the link; it connects (and reconnects) in the background."""

    def stop(self) -> None:
        """Disconnect and stop the link's thread."""

    def put_status(self, status: AgentStatus) -> None:
        """Put the periodic status (connected; never blocks the uplink thread)."""

    def put_final_status(self, status: AgentStatus | None) -> None:
        """Put the status at a clean stop (connected), ``None`` when its counters could not be
        read; the link stops right after."""

    def summary(self) -> str | None:
        """A line for the log at stop (``None``: nothing to say)."""
