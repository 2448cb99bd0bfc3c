"""``farmwatch-collector --replay-quarantine``: quarantined messages through the normal path.

Each quarantined message (of one cause, with ``--cause``) is checked again exactly as the live
path checks it (``collector.checks``), on the collector's clock now and against the farm
directory now: the points it yields are written (idempotent, so points written when it was
first refused are merely rewritten), and a message that now passes whole is removed from the
quarantine. One still refused, or refused by the database, stays. Replaying needs no broker:
the agents were confirmed when the message was quarantined.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field

from collector.checks import check_message
from collector.quarantine import QuarantineStore
from farmwatch_shared.clock import Clock
from farmwatch_shared.influx import PermanentWriteError, PointWriter


@dataclass
class ReplayResult:
    """What a replay did."""

    replayed: int = 0
    removed: int = 0
    points_written: int = 0
    kept: Counter[str] = field(default_factory=Counter)
    """Messages still quarantined, by the cause that refuses them now."""


def replay_quarantine(
    store: QuarantineStore,
    writer: PointWriter,
    *,
    farms: Collection[str],
    clock: Clock,
    cause: str | None = None,
) -> ReplayResult:
    """Replay the quarantined messages (of ``cause``). A database that cannot be reached
    raises RetryableWriteError: what was replayed so far is done, the rest stays."""
    result = ReplayResult()
    for message in store.messages(cause):
        result.replayed += 1
        checked = check_message(
            message.topic, message.payload, retained=False, farms=farms, now_ms=clock.now_ms()
        )
        if checked.lines:
            try:
                writer.write(checked.lines)
            except PermanentWriteError:
                result.kept["database_refused"] += 1
                continue
            result.points_written += len(checked.lines)
        if checked.refusal is not None:
            result.kept[checked.refusal.cause] += 1
            continue
        store.remove(message.id)
        result.removed += 1
    return result
