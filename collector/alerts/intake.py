"""One MQTT message into the alert engine, isolated: whatever goes wrong with a message (a
payload the contract refuses, too deep, unknown fields, or any exception while decoding or
evaluating it) stays with that message. It is quarantined whole in the alert store with the
reason, counted and logged once per cause, and the caller acknowledges it, so one bad message
(even a retained one, redelivered on every start) never stops the service."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from typing import Protocol

from collector.alerts.store import AlertStore
from farmwatch_shared.clock import Clock
from farmwatch_shared.contract import (
    AgentStatus,
    ContractError,
    ReadingBatch,
    decode_message,
    parse_topic,
)
from farmwatch_shared.mqtt import Delivery
from farmwatch_shared.problems import ProblemLog


class Ingest(Protocol):
    """What the intake needs of the engine."""

    def ingest_batch(self, batch: ReadingBatch) -> bool:
        """Store and evaluate a batch."""
        ...

    def ingest_status(self, status: AgentStatus) -> bool:
        """Record and evaluate an agent status."""
        ...


class MessageIntake:
    """Hands each message of the farms in ``farms`` to ``engine``; quarantines what fails."""

    def __init__(
        self,
        engine: Ingest,
        store: AlertStore,
        farms: Collection[str],
        clock: Clock,
        problems: ProblemLog,
    ) -> None:
        self._engine = engine
        self._store = store
        self._farms = frozenset(farms)
        self._clock = clock
        self._problems = problems
        self.quarantined = 0

    def handle(self, delivery: Delivery) -> str | None:
        """Handle one message; return the cause it was quarantined for, None if it was fine.

        Only a failing store (``sqlite3.OperationalError``: disk full, I/O error, locked) is
        not the message's fault: it propagates, the service stops and the unacknowledged
        message is redelivered after the restart."""
        try:
            farm, _, _ = parse_topic(delivery.topic)
            if farm not in self._farms:
                return None  # another instance's farm, or no farm file here: not worth decoding
            message = decode_message(delivery.topic, delivery.payload)
            if isinstance(message, ReadingBatch):
                self._engine.ingest_batch(message)
            elif isinstance(message, AgentStatus):
                self._engine.ingest_status(message)
        except ContractError as exc:
            cause, detail = exc.cause, exc.detail
        except sqlite3.OperationalError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of one message is isolated
            cause, detail = f"unexpected_{type(exc).__name__}", str(exc) or repr(exc)
        else:
            return None
        self._store.quarantine(
            "mqtt", delivery.topic, delivery.payload, cause, detail, self._clock.now_ms()
        )
        self.quarantined += 1
        self._problems.report(
            cause, f"mensaje en cuarentena / message quarantined: {delivery.topic}: {detail[:200]}"
        )
        return cause
