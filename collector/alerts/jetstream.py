"""The alerting service on the hub (``FARMWATCH_ALERTS_TRANSPORT=jetstream``, docs/scale-out.md):
active/standby on the consumer instead of farm sharding and a lease in a shared database.

Every alerting process pulls the ``alerts`` consumer of the readings stream, a pinned consumer
(priority group ``alerts``): the server gives its messages to one process at a time, the one it
pinned, and pins another when that one stopped pulling for the consumer's priority timeout
(``farmwatch-hub apply --alerts-pinned-ttl-s``). The pinned process is the one that evaluates
and sends (``PinnedGate``); it reads the agents' presence (``alerts-presence``) meanwhile. A
process that loses the pin (the server answers 423, or it did not hear from the hub for
``hub_pin_ttl_s``, kept below the server's timeout so two never send at once) stops, as one
that lost the lease does, and comes back as a standby. Each process publishes a heartbeat on the
stream, so a pin moves even when no farm sends anything.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from collector.alerts.settings import AlertSettings
from collector.alerts.store import AlertStore
from farmwatch_shared.hub.consumer import HubConsumer, PullSource
from farmwatch_shared.hub.layout import (
    ALERTS_CONSUMER,
    ALERTS_GROUP,
    ALERTS_PRESENCE_CONSUMER,
    PRESENCE_STREAM,
    STREAM,
)
from farmwatch_shared.hub.link import NatsLink


def make_hub_consumer(settings: AlertSettings) -> HubConsumer:
    """This process's pulls on the pinned ``alerts`` consumer and, while pinned, on the
    presence consumer."""
    return HubConsumer(
        NatsLink(settings.nats_endpoint(settings.client_id)),
        [
            PullSource(STREAM, ALERTS_CONSUMER, group=ALERTS_GROUP),
            PullSource(PRESENCE_STREAM, ALERTS_PRESENCE_CONSUMER, while_pinned=True),
        ],
        fetch_batch=100,
        max_unacked=200,
        pinned_ttl_s=settings.hub_pin_ttl_s,
        heartbeat_s=settings.hub_heartbeat_s,
    )


class PinnedGate:
    """The process holding the ``alerts`` consumer's pin sends (a ``SenderGate``)."""

    def __init__(self, consumer: HubConsumer) -> None:
        self._consumer = consumer

    def acquire(self, store: AlertStore, stop: threading.Event, start: Callable[[], None]) -> bool:
        """Start pulling, then wait for the pin (a standby waits here)."""
        start()
        while not stop.is_set():
            if self._consumer.pinned.wait(0.2):
                return True
        return False

    def renew(self, store: AlertStore) -> bool:
        """Whether this process still holds the pin."""
        return self._consumer.pinned.is_set()

    def release(self) -> None:
        """Nothing left to do: stopping the consumer handed the pin over."""
