"""Frame counters (pure): is an uplink new, the rest of one half committed, or one already
stored; did the device rejoin; how many uplinks were never received.

What is kept per device (``DeviceMark``) is its last uplink whose values were committed: its
frame counter, its network time, ChirpStack's deduplication id, and how many of its *parts*
(one per sensor the device feeds, committed one transaction each) are in the outbox. The mark
is written in the same transaction as each part, so after a crash the uplink delivered again
resumes after the last committed part and nothing is stored twice.

An uplink with the mark's deduplication id (or its frame counter and time) is the same uplink
again. Within a session frame counters only rise: a higher counter is a new uplink (the ones
skipped are counted lost), a lower or equal one with a *later* network time is a new session
(the device rejoined, or restarted its counter), and one without a later time is an old uplink
repeated. A join event seen after the mark starts a new session too. The uplinks of a new
session before the first one received (its counter starts at 0) are counted lost.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

OWNER_PREFIX = "lorawan/"
"""Source-state owner of a device: ``lorawan/<device id>`` (see ``StateUpdate.source``)."""
_KEYS = ("fcnt", "time_ms", "parts", "dedup", "joined_ms", "lost", "rejoins")


def owner(device_id: str) -> str:
    """The source-state owner under which a device's mark is kept."""
    return f"{OWNER_PREFIX}{device_id}"


def dedup_key(dedup_id: str | None) -> int:
    """A deduplication id as a number the outbox keeps exactly (48 bits; 0: none)."""
    if not dedup_id:
        return 0
    return int.from_bytes(hashlib.sha256(dedup_id.encode()).digest()[:6], "big") or 1


@dataclass(frozen=True)
class DeviceMark:
    """What is kept for one LoRaWAN device between its uplinks."""

    fcnt: int = -1
    """Frame counter of the last uplink (-1: none yet)."""
    time_ms: int = 0
    """Its network time."""
    parts: int = 0
    """How many of its parts are committed."""
    dedup: int = 0
    """Its deduplication id (``dedup_key``), 0 when the network server gives none."""
    joined_ms: int = 0
    """Time of a join event seen after it (0: none)."""
    lost: int = 0
    """Uplinks never received, counted from the frame counters, since the device was first
    seen."""
    rejoins: int = 0
    """New sessions seen (rejoins, counter resets)."""

    def state(self, device_id: str) -> dict[str, float]:
        """The mark as source-state rows of the device's owner."""
        prefix = owner(device_id)
        return {f"{prefix}.{key}": float(getattr(self, key)) for key in _KEYS}

    @classmethod
    def from_state(cls, values: Mapping[str, float]) -> DeviceMark:
        """The mark kept in ``values`` (``Outbox.source_state(owner(device))``)."""
        return cls(**{key: int(values[key]) for key in _KEYS if key in values})


@dataclass(frozen=True)
class Verdict:
    """What to do with an uplink: commit its parts from ``skip`` on, each with ``mark`` (and
    its ``parts`` count), or nothing (``duplicate``)."""

    kind: Literal["new", "resume", "duplicate"]
    mark: DeviceMark
    skip: int = 0
    rejoined: bool = False

    def after(self, parts: int) -> DeviceMark:
        """The mark to keep with the commit of the first ``parts`` parts."""
        return replace(self.mark, parts=parts)


def judge(
    mark: DeviceMark,
    *,
    fcnt: int,
    time_ms: int,
    own_time: bool,
    dedup: int,
    parts: int,
) -> Verdict:
    """The verdict on an uplink with ``fcnt`` at ``time_ms`` (``own_time``: the network's time,
    not the agent's receipt time) carrying ``parts`` parts, given the device's ``mark``."""
    if mark.fcnt >= 0 and _same_uplink(mark, fcnt, time_ms, own_time, dedup):
        if mark.parts >= parts:
            return Verdict("duplicate", mark)
        return Verdict("resume", mark, skip=mark.parts)
    fresh = DeviceMark(fcnt, time_ms, 0, dedup, 0, mark.lost, mark.rejoins)
    if mark.fcnt < 0:
        return Verdict("new", fresh)
    if mark.joined_ms > mark.time_ms or (fcnt <= mark.fcnt and own_time and time_ms > mark.time_ms):
        return Verdict(
            "new", replace(fresh, lost=mark.lost + fcnt, rejoins=mark.rejoins + 1), rejoined=True
        )
    if fcnt > mark.fcnt:
        return Verdict("new", replace(fresh, lost=mark.lost + fcnt - mark.fcnt - 1))
    return Verdict("duplicate", mark)  # an older uplink of this session, again


def _same_uplink(mark: DeviceMark, fcnt: int, time_ms: int, own_time: bool, dedup: int) -> bool:
    if dedup and mark.dedup:
        return dedup == mark.dedup
    return fcnt == mark.fcnt and (time_ms == mark.time_ms or not own_time)


def joined(mark: DeviceMark, time_ms: int) -> DeviceMark | None:
    """The mark after a join event at ``time_ms``; None for a join older than the mark's
    uplink (an event repeated, or reported after the first uplink of its session)."""
    if time_ms <= mark.time_ms:
        return None
    return replace(mark, joined_ms=time_ms)
