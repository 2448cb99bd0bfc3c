"""What the SMS dispatcher needs of a delivery channel (GSM modem, HTTP gateway)."""

from __future__ import annotations

from typing import Protocol


class ChannelError(Exception):
    """A message could not be handed to a channel. ``cause`` is a stable key for counting;
    ``permanent`` means retrying this message on this channel is pointless."""

    def __init__(self, cause: str, detail: str = "", *, permanent: bool = False) -> None:
        super().__init__(f"{cause}: {detail}" if detail else cause)
        self.cause = cause
        self.detail = detail
        self.permanent = permanent


class SmsChannel(Protocol):
    """Sends one text message; raises :class:`ChannelError` when it could not."""

    name: str

    def send(self, phone: str, text: str) -> str:
        """Send and return the channel's reference for the message."""
        ...
