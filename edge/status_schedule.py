"""When the agent puts its status (on MQTT retained, on the hub its presence put).

A status is put:

- **at once when the link (re)connects**: the broker's last will (on the hub the key's TTL)
  stood in for it while the link was down;
- **with a batch, when it has news** since the last put (``StatusNews``: the state, the
  version, readings dropped or lines rejected, the clock, a backlog that fell behind or caught
  up, a radio device's lost, refused or rejoined uplinks): the radio is awake for the batch
  anyway, and news waits at most a batch age (a reading an operator must hear about sends a
  batch at once, ``edge/urgency.py``). A counter is news when it reaches the next power of two
  (1, 2, 4, 8…): a sensor that sends garbage every minute is told at once, then ever more
  rarely, not with every batch;
- **otherwise every** ``heartbeat_s`` (``status_interval_s``), on its own.

The rest of a status (its time, the exact backlog, a device's signal) is no news: it goes with
the next put. Pure: the agent passes the time and what happened; this says when to put.
"""

from __future__ import annotations

from dataclasses import dataclass

from farmwatch_shared.contract import AgentStatus


@dataclass(frozen=True)
class StatusNews:
    """What in a status an operator acts on: two statuses with the same news need not both go
    over a paid link."""

    state: str
    version: str
    dropped: int
    """``dropped_total``'s order (``magnitude``), like every counter here."""
    rejected: int
    clock_synced: bool
    behind: bool
    """More readings wait in the outbox than a batch carries: the uplink is catching up."""
    devices: tuple[tuple[str, int, int, int], ...]
    """Each radio device's id and the orders of its lost uplinks, refused uplinks and
    rejoins."""

    @classmethod
    def of(cls, status: AgentStatus, batch_max_readings: int) -> StatusNews:
        """The news of ``status`` for an uplink whose batches carry ``batch_max_readings``."""
        return cls(
            state=status.state,
            version=status.version,
            dropped=magnitude(status.dropped_total),
            rejected=magnitude(status.rejected_lines),
            clock_synced=status.clock_synced,
            behind=status.outbox_backlog > batch_max_readings,
            devices=tuple(
                (d.id, magnitude(d.lost_uplinks), magnitude(d.refused), magnitude(d.rejoins))
                for d in status.devices
            ),
        )


def magnitude(count: int) -> int:
    """A counter's order: 0 for 0, then one more at each power of two (1, 2, 4, 8…)."""
    return count.bit_length()


class StatusSchedule:
    """The agent's status timing (see the module). Times are monotonic seconds."""

    def __init__(self, heartbeat_s: float, now: float) -> None:
        self._heartbeat_s = heartbeat_s
        self._next_heartbeat = now + heartbeat_s
        self._last: StatusNews | None = None

    def must_put(self, now: float, *, connected: bool) -> bool:
        """Whether a status goes now whatever its news: the link just (re)connected, or the
        heartbeat is due."""
        return connected or now >= self._next_heartbeat

    def is_news(self, news: StatusNews) -> bool:
        """Whether ``news`` differs from the last status put (always before the first)."""
        return news != self._last

    def put(self, now: float, news: StatusNews) -> None:
        """A status with ``news`` was put at ``now``: the next heartbeat is ``heartbeat_s``
        later."""
        self._last = news
        self._next_heartbeat = now + self._heartbeat_s
