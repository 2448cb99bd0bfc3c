"""What both uplinks share (``Uplink`` over MQTT, ``JetStreamUplink`` to the hub): the outbox,
when new readings leave it (``Release``), how a batch is encoded and cut to the size limit, at
most ``window`` batches in flight, and one probe at a time while the far side takes nothing.

Each uplink adds its side: what answers it reads (``_process_events``), what it publishes next
(``_send_next``) and what else is due on each pump (``_housekeeping``).
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Generic, TypeVar, Unpack

from edge.batching import Encoded, encode_fitting
from edge.release import Release
from edge.transport import UplinkArgs
from farmwatch_shared.backoff import Backoff
from farmwatch_shared.contract import Reading

InflightT = TypeVar("InflightT")
"""What an uplink keeps about a batch in flight, by its handle (paho's mid, a hub token)."""


class OutboxUplink(ABC, Generic[InflightT]):
    """The half of an uplink that does not depend on the link (see the module)."""

    def __init__(self, **args: Unpack[UplinkArgs]) -> None:
        self._farm = args["farm"]
        self._agent = args["agent"]
        self._outbox = args["outbox"]
        self._clock = args["clock"]
        self._problems = args["problems"]
        self._batch_max = args["batch_max_readings"]
        self._release = Release(
            args["clock"],
            batch_max_readings=args["batch_max_readings"],
            batch_max_age_s=args["batch_max_age_s"],
            urgency=args["urgency"],
        )
        self._compress = args["compress"]
        self._payload_version = args["payload_version"]
        self._payload_limit = args["payload_limit"]
        self._window = args["window"]
        self._inflight: dict[int, InflightT] = {}
        self._order = itertools.count()
        """Ties in the resend heaps: first come, first sent."""
        self._cursor = -1
        """Highest sequence number of a first send in this process."""
        self._paused_until: float | None = None
        """While set, the far side takes none of our batches: one probe at a time."""
        self._failure_backoff = Backoff(initial_s=1.0, max_s=60.0)
        self.messages_sent = 0
        """Batch messages published (accepted by the link's client)."""
        self.bytes_sent = 0
        """Their payload bytes."""
        self.readings_committed = 0
        """Readings confirmed stored, deleted from the outbox."""

    def rewind(self) -> None:
        """Scan the outbox from the start again (held readings were released)."""
        self._cursor = -1

    @property
    def inflight(self) -> int:
        """Batches published and not yet acknowledged."""
        return len(self._inflight)

    def pump(self) -> bool:
        """Process events and publish what is due; return whether anything happened."""
        progressed = self._process_events()
        progressed |= self._housekeeping()
        if not self._link_up:
            return progressed
        window = self._window
        if self._paused_until is not None:
            if self._clock.monotonic() < self._paused_until:
                return progressed
            window = 1  # a probe: does the far side take our batches again?
        while len(self._inflight) < window:
            if not self._send_next():
                break
            progressed = True
        return progressed

    def _encode(self, readings: Sequence[Reading]) -> Encoded:
        """The batch of the longest prefix of ``readings`` that fits the limits."""
        return encode_fitting(
            self._farm,
            self._agent,
            readings,
            compress=self._compress,
            limit=self._payload_limit,
            version=self._payload_version,
        )

    @property
    @abstractmethod
    def _link_up(self) -> bool:
        """Connected now (publishing makes sense)."""

    @abstractmethod
    def _process_events(self) -> bool:
        """Take the answers the link's thread queued; whether there were any."""

    def _housekeeping(self) -> bool:
        """What else is due at each pump (nothing here); whether anything happened."""
        return False

    @abstractmethod
    def _send_next(self) -> bool:
        """Publish the next due batch; False when there is none (or it could not go)."""
