"""Delivers the SMS outbox: each due message goes to the first channel that takes it (GSM modem,
then HTTP gateway); when every channel fails it stays queued and is retried with backoff, so a
message is never lost because a channel was down.

A message is sent once, not once per channel: parts the modem confirmed are recorded (table
``sms_parts``) and never sent again, and a message with a part sent or of unknown outcome
(no ``+CMGS``, no HTTP answer) is bound to that channel: it is not failed over, since the
other channel would send the whole text again. See docs/alerts.md, "Sending each SMS once"."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from collector.alerts.channels import ChannelError, PartLedger, SmsChannel
from collector.alerts.privacy import mask_phone, redact
from collector.alerts.store import AlertStore, OutgoingSms
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
        now = self._clock.now_ms()
        due = self._store.due_sms(now, horizon_ms=int(self._retry_max_s * 1000))
        if not due:
            return 0
        down: set[str] = set()  # channels that failed this round are not tried again in it
        sent = 0
        for message in due:
            if self._send(message, down):
                sent += 1
        self.sent += sent
        return sent

    def _send(self, message: OutgoingSms, down: set[str]) -> bool:
        bound, done = self._store.sms_progress(message.id)
        candidates = [c for c in self._channels if bound is None or c.name == bound]

        def confirmed(channel: str) -> Callable[[int, int, str], None]:
            def record(part: int, total: int, reference: str) -> None:
                with self._store.transaction():
                    self._store.sms_part_sent(
                        message.id, part, channel, reference, self._clock.now_ms()
                    )

            return record

        errors: list[ChannelError] = []
        for channel in candidates:
            if channel.name in down:
                continue
            ledger = PartLedger(message.id % 256, set(done), confirmed(channel.name))
            try:
                reference = channel.send(message.phone, message.text, ledger)
            except ChannelError as exc:
                errors.append(exc)
                self._problems.report(
                    f"{channel.name}_{exc.cause}",
                    redact(f"SMS por {channel.name} falló / failed: {exc}"),
                )
                if exc.uncertain:
                    with self._store.transaction():
                        self._store.sms_part_uncertain(
                            message.id, exc.part, channel.name, self._clock.now_ms()
                        )
                if not exc.permanent:
                    down.add(channel.name)
                if exc.uncertain or ledger.sent - done:
                    # (part of) it may have gone out here: another channel would duplicate it
                    log.warning(
                        "SMS #%d sigue por %s / stays on %s (parts sent %s)",
                        message.id,
                        channel.name,
                        channel.name,
                        sorted(ledger.sent) or "?",
                    )
                    break
                continue
            with self._store.transaction():
                self._store.sms_sent(message.id, channel.name, reference, self._clock.now_ms())
            log.info(
                "SMS enviado / sent #%d (%s) to %s via %s ref %s",
                message.id,
                message.kind,
                mask_phone(message.phone),
                channel.name,
                reference,
            )
            return True
        self.failures += 1
        permanent = bool(errors) and all(e.permanent for e in errors)
        refused = permanent and len(errors) == len(candidates)
        if refused:
            log.error("SMS #%d rechazado por todos los canales / refused", message.id)
        delay = retry_delay_ms(message.attempts + 1, self._retry_initial_s, self._retry_max_s)
        with self._store.transaction():
            self._store.sms_retry(
                message.id,
                self._clock.now_ms() + delay,
                "; ".join(str(e) for e in errors) or "no channel available",
                failed=refused,
            )
        return False
