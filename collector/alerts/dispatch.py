"""Delivers the SMS outbox: each due message goes to the first channel that takes it (GSM modem,
then HTTP gateway); when every channel fails it stays queued and is retried with backoff, so a
message is never lost because a channel was down."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from collector.alerts.channels import ChannelError, SmsChannel
from collector.alerts.store import AlertStore
from farmwatch_shared.clock import Clock
from farmwatch_shared.problems import ProblemLog

log = logging.getLogger(__name__)


def retry_delay_ms(attempts: int, initial_s: float, max_s: float) -> int:
    """Delay before the next attempt after ``attempts`` failed rounds (doubling, capped)."""
    return int(min(initial_s * 2 ** max(attempts - 1, 0), max_s) * 1000)


class Dispatcher:
    """Sends due messages through ``channels`` in order of preference."""

    def __init__(
        self,
        store: AlertStore,
        channels: Sequence[SmsChannel],
        clock: Clock,
        problems: ProblemLog,
        *,
        retry_initial_s: float = 30.0,
        retry_max_s: float = 900.0,
    ) -> None:
        self._store = store
        self._channels = list(channels)
        self._clock = clock
        self._problems = problems
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self.sent = 0
        self.failures = 0

    def send_due(self) -> int:
        """One round over the due messages; return how many were sent."""
        due = self._store.due_sms(self._clock.now_ms())
        if not due:
            return 0
        down: set[str] = set()  # channels that failed this round are not tried again in it
        sent = 0
        for message in due:
            errors: list[ChannelError] = []
            for channel in self._channels:
                if channel.name in down:
                    continue
                try:
                    reference = channel.send(message.phone, message.text)
                except ChannelError as exc:
                    errors.append(exc)
                    self._problems.report(
                        f"{channel.name}_{exc.cause}",
                        f"SMS por {channel.name} falló / failed: {exc}",
                    )
                    if not exc.permanent:
                        down.add(channel.name)
                    continue
                with self._store.transaction():
                    self._store.sms_sent(message.id, channel.name, reference, self._clock.now_ms())
                log.info(
                    "SMS enviado / sent #%d (%s) to …%s via %s ref %s",
                    message.id,
                    message.kind,
                    message.phone[-4:],
                    channel.name,
                    reference,
                )
                sent += 1
                break
            else:
                self.failures += 1
                permanent = bool(errors) and all(e.permanent for e in errors)
                if permanent and len(errors) == len(self._channels):
                    log.error("SMS #%d rechazado por todos los canales / refused", message.id)
                delay = retry_delay_ms(
                    message.attempts + 1, self._retry_initial_s, self._retry_max_s
                )
                with self._store.transaction():
                    self._store.sms_retry(
                        message.id,
                        self._clock.now_ms() + delay,
                        "; ".join(str(e) for e in errors) or "no channel available",
                        failed=permanent and len(errors) == len(self._channels),
                    )
        self.sent += sent
        return sent
