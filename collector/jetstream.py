"""The collector on the hub (``FARMWATCH_COLLECTOR_TRANSPORT=jetstream``, docs/scale-out.md).

Any number of collectors share two durable pull consumers: ``collector`` on the readings stream
and ``collector-presence`` on the agents' presence bucket. The ingest path is the MQTT one
(``Collector``, ``Ingestor``): each message is checked, written, and acknowledged only after the
database accepted it; a collector that dies leaves its unacknowledged messages to the others
after the consumer's ``ack_wait``. Such a redelivery writes the same points again (a point is
its series and time: InfluxDB keeps one), so it costs a write, never a duplicate.
"""

from __future__ import annotations

from collector.settings import CollectorSettings
from farmwatch_shared.hub.consumer import HubConsumer, PullSource
from farmwatch_shared.hub.layout import (
    COLLECTOR_CONSUMER,
    COLLECTOR_PRESENCE_CONSUMER,
    PRESENCE_STREAM,
    STREAM,
)
from farmwatch_shared.hub.link import NatsLink


def make_hub_consumer(settings: CollectorSettings) -> HubConsumer:
    """The collector's share of the readings and presence consumers; at most
    ``receive_maximum`` messages held unacknowledged (the memory bound of this process)."""
    link = NatsLink(settings.nats_endpoint(settings.client_id))
    return HubConsumer(
        link,
        [
            PullSource(STREAM, COLLECTOR_CONSUMER),
            PullSource(PRESENCE_STREAM, COLLECTOR_PRESENCE_CONSUMER),
        ],
        fetch_batch=min(200, settings.receive_maximum),
        max_unacked=settings.receive_maximum,
        stats_interval_s=settings.stats_interval_s,
    )
