"""What the collector makes of one message: the points to write, or why (part of) it is refused.

The one decision, used by the live ingest path and by ``--replay-quarantine`` alike:
- a topic outside the contract, a farm not in the farm directory (``unknown_farm``), or a
  payload the contract refuses: the whole message is refused;
- a reading batch: every plausible reading becomes a point; the impossible ones (checked on the
  collector's clock) refuse the message as ``impossible_value`` while the others are written;
- an agent status becomes an ``agent_status`` point at its own ``ts`` (and one
  ``device_health`` point per radio device it reports); one without ``ts`` (the
  agent's last will) is stamped with the collector's time when it arrives live, and is not
  stored again when the broker replays it as a retained message at a subscribe (finding 17:
  otherwise every restart of the collector added another "offline" point);
- a cleared retained status (empty payload) is nothing to do.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from farmwatch_shared.contract import (
    AgentStatus,
    ContractError,
    ReadingBatch,
    decode_message,
    parse_topic,
    reading_problem,
)
from farmwatch_shared.lineprotocol import device_health_lines, reading_lines, status_line

MAX_REFUSED_DETAILS = 20
"""Refused readings listed in a refusal's detail (the payload itself is quarantined whole)."""


@dataclass(frozen=True)
class Refusal:
    """Why a message (or some of its readings) is refused: a stable cause and a detail."""

    cause: str
    detail: str


@dataclass(frozen=True)
class Checked:
    """The outcome for one message."""

    lines: list[str] = field(default_factory=list)
    """Points to write."""
    agent: tuple[str, str] | None = None
    """(farm, agent) of a reading batch."""
    written_seqs: list[int] = field(default_factory=list)
    """Sequence numbers of the readings that became ``lines``."""
    refused_seqs: list[int] = field(default_factory=list)
    """Sequence numbers of the readings refused with the message (quarantined with it)."""
    refusal: Refusal | None = None
    replayed_status: bool = False
    """A retained status without ``ts`` replayed at a subscribe: not stored again."""


def check_message(
    topic: str, payload: bytes, *, retained: bool, farms: Collection[str], now_ms: int
) -> Checked:
    """Decide what one message becomes (see the module docstring)."""
    try:
        farm, _, _ = parse_topic(topic)
        if farm not in farms:
            return Checked(refusal=Refusal("unknown_farm", f"farm {farm} is not in the farm dir"))
        message = decode_message(topic, payload)
    except ContractError as exc:
        return Checked(refusal=Refusal(exc.cause, exc.detail))
    if message is None:
        return Checked()
    if isinstance(message, ReadingBatch):
        return _check_batch(message, now_ms)
    if isinstance(message, AgentStatus):
        if message.ts is None and retained:
            return Checked(replayed_status=True)
        return Checked(lines=[status_line(message, now_ms), *device_health_lines(message, now_ms)])
    return Checked(refusal=Refusal("bad_topic", f"{topic}: not a topic the collector consumes"))


def _check_batch(batch: ReadingBatch, now_ms: int) -> Checked:
    good = []
    refused: list[tuple[int, str]] = []
    for reading in batch.readings:
        problem = reading_problem(reading, now_ms)
        if problem is None:
            good.append(reading)
        else:
            refused.append(
                (
                    reading.seq,
                    f"seq {reading.seq} {reading.sensor}: {problem} "
                    f"({reading.value} at {reading.ts})",
                )
            )
    refusal = None
    if refused:
        detail = "; ".join(text for _, text in refused[:MAX_REFUSED_DETAILS])
        if len(refused) > MAX_REFUSED_DETAILS:
            detail += f"; … {len(refused)} readings refused"
        refusal = Refusal("impossible_value", detail)
    return Checked(
        lines=reading_lines(batch.farm, batch.agent, good),
        agent=(batch.farm, batch.agent),
        written_seqs=[reading.seq for reading in good],
        refused_seqs=[seq for seq, _ in refused],
        refusal=refusal,
    )
