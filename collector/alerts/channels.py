"""What the SMS dispatcher needs of a delivery channel (GSM modem, HTTP gateway)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


class ChannelError(Exception):
    """A message could not be handed to a channel. ``cause`` is a stable key for counting;
    ``permanent`` means retrying this message on this channel is pointless; ``uncertain`` means
    the channel may have sent it (or its part ``part``) anyway — no answer after the modem took
    the PDU, no HTTP response after the request went out — so no other channel may send it."""

    def __init__(
        self,
        cause: str,
        detail: str = "",
        *,
        permanent: bool = False,
        uncertain: bool = False,
        part: int = 1,
    ) -> None:
        super().__init__(f"{cause}: {detail}" if detail else cause)
        self.cause = cause
        self.detail = detail
        self.permanent = permanent
        self.uncertain = uncertain
        self.part = part


@dataclass
class PartLedger:
    """The parts of one message already sent, across attempts: a channel that splits a message
    (the modem) skips them and reuses ``reference``, so a resend never repeats a confirmed part
    and the recipient's phone joins the parts of every attempt into one message."""

    reference: int
    """Concatenation reference (0–255) of every part of this message."""
    sent: set[int] = field(default_factory=set)
    """1-based indexes of the parts confirmed sent."""
    on_sent: Callable[[int, int, str], None] | None = None
    """Called with (part, total, channel reference) as each part is confirmed (it commits)."""

    def record(self, part: int, total: int, reference: str) -> None:
        """Part ``part`` of ``total`` was confirmed sent."""
        self.sent.add(part)
        if self.on_sent is not None:
            self.on_sent(part, total, reference)


class SmsChannel(Protocol):
    """Sends one text message; raises :class:`ChannelError` when it could not."""

    name: str

    def send(self, phone: str, text: str, ledger: PartLedger | None = None) -> str:
        """Send (the parts of ``text`` not yet in ``ledger``) and return the channel's
        reference for the message."""
        ...
