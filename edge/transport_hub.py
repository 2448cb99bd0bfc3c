"""The edge agent's hub transport (``transport = "jetstream"``, docs/scale-out.md): a
``NatsLink`` to the cluster, the hub uplink (``JetStreamUplink``) instead of the MQTT one, and
the agent's presence in the hub's key-value bucket instead of a retained status and a last
will. nats-py is the ``hub`` extra: ``edge/cli.py`` imports this module only when it is chosen.

Presence: the agent puts its ``AgentStatus`` (online, backlog, counters) to its key in
``farmwatch_presence`` every ``status_interval_s`` (the ``nats_presence_interval_s`` setting)
and when it connects, and ``offline`` when it
stops cleanly. The bucket ages a key out after its TTL (``farmwatch-hub apply
--presence-ttl-s``, above the agent's interval) and places a marker that the collector writes
as ``offline`` and the alerting service reads as the agent going silent: the last will, kept
by the cluster instead of one broker.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import sqlite3

from edge.transport import Signals, UplinkArgs
from edge.uplink_jetstream import HubEventQueue, JetStreamUplink, Refused
from farmwatch_shared.contract import AgentStatus, encode_status
from farmwatch_shared.hub.endpoint import NatsEndpoint
from farmwatch_shared.hub.layout import MSG_ID_HEADER, presence_subject
from farmwatch_shared.hub.link import NatsLink

log = logging.getLogger(__name__)


class LinkPublisher:
    """JetStream publishes through a ``NatsLink`` (the uplink's ``HubPublisher``)."""

    def __init__(self, link: NatsLink, ack_timeout_s: float) -> None:
        self._link = link
        self._timeout_s = ack_timeout_s

    @property
    def connected(self) -> bool:
        """Connected to a node now."""
        return self._link.connected

    def publish(
        self, subject: str, payload: bytes, msg_id: str | None
    ) -> concurrent.futures.Future[bool]:
        """Publish and wait (on the link's thread) for the stream's acknowledgement."""
        return self._link.submit(self._publish(subject, payload, msg_id))

    async def _publish(self, subject: str, payload: bytes, msg_id: str | None) -> bool:
        headers = {MSG_ID_HEADER: msg_id} if msg_id is not None else None
        ack = await self._link.client.jetstream().publish(
            subject, payload, timeout=self._timeout_s, headers=headers
        )
        return bool(ack.duplicate)


class HubTransport:
    """The agent's link to the hub, its uplink and its presence (see the module)."""

    def __init__(
        self,
        endpoint: NatsEndpoint,
        uplink: UplinkArgs,
        *,
        ack_timeout_s: float,
    ) -> None:
        self._farm, self._agent = uplink["farm"], uplink["agent"]
        self._outbox = uplink["outbox"]
        self._problems = uplink["problems"]
        self.signals = Signals()
        self._presence_subject = presence_subject(self._farm, self._agent)
        self._events: HubEventQueue = queue.SimpleQueue()
        self._presence: concurrent.futures.Future[bool] | None = None
        self.link = NatsLink(
            endpoint, on_refused=self._on_refused, on_connected=self.signals.connected
        )
        self.publisher = LinkPublisher(self.link, ack_timeout_s)
        self.uplink = JetStreamUplink(
            publisher=self.publisher, events=self._events, wake=self.signals.wake.set, **uplink
        )

    # link thread: only queue events for the uplink thread
    def _on_refused(self, subject: str) -> None:
        if subject == self._presence_subject.lower():
            self._problems.report(
                "presence_refused",
                f"el hub rechazó la presencia en {self._presence_subject} (permisos) / the hub "
                f"refused the presence put to {self._presence_subject} (the user's permissions)",
            )
            return
        self._events.put(Refused(subject))
        self.signals.wake.set()

    @property
    def connected(self) -> bool:
        """Connected to a node now."""
        return self.link.connected

    def start(self) -> None:
        """Start the link's thread (it connects across the nodes)."""
        self.link.start()

    def stop(self) -> None:
        """Disconnect and stop the link's thread."""
        self.link.stop()

    def put_status(self, status: AgentStatus) -> None:
        """Put the presence, unless the previous put still waits for its acknowledgement."""
        if self._presence is not None and not self._presence.done():
            return
        self._presence = self.publisher.publish(self._presence_subject, encode_status(status), None)
        self._presence.add_done_callback(self._presence_done)

    def _presence_done(self, future: concurrent.futures.Future[bool]) -> None:
        exc = future.exception()
        if exc is not None:
            self._problems.report(
                "presence_not_stored", f"presencia sin confirmar / presence not stored: {exc}"
            )

    def put_final_status(self, status: AgentStatus | None) -> None:
        """Put the offline presence and wait (2 s at most) for its acknowledgement."""
        if status is None:
            status = AgentStatus(v=1, farm=self._farm, agent=self._agent, state="offline")
        future = self.publisher.publish(self._presence_subject, encode_status(status), None)
        try:
            future.result(timeout=2.0)
        except Exception as exc:  # noqa: BLE001 - stopping anyway: the TTL says offline later
            log.warning("Presencia final / final presence: %s", exc)

    def summary(self) -> str | None:
        """What the hub uplink did since the start, and the backlog left."""
        up = self.uplink
        try:
            backlog = str(self._outbox.backlog())
        except sqlite3.Error:  # the outbox that stopped the agent: the counters still say much
            backlog = "?"
        return (
            f"hub uplink: batches={up.messages_sent} stored={up.readings_committed} "
            f"duplicates={up.duplicates} refusals={up.refusals} backlog={backlog}"
        )
