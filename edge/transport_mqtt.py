"""The edge agent's MQTT transport (the default, ``transport = "mqtt"``): one persistent
``MqttSession`` (clean_start off, a week's session expiry) subscribed to the agent's
``committed`` topic, the MQTT ``Uplink``, and the status retained on the agent's status topic
with an ``offline`` last will the broker publishes when the agent goes without a clean stop."""

from __future__ import annotations

import queue

import paho.mqtt.client as paho

from edge.transport import Signals, UplinkArgs
from edge.uplink import Confirmation, Connected, EventQueue, Puback, Uplink
from farmwatch_shared.contract import AgentStatus, committed_topic, encode_status, status_topic
from farmwatch_shared.mqtt import Delivery, MqttEndpoint, MqttSession, Will
from farmwatch_shared.version import VERSION


class MqttTransport:
    """The agent's broker session, its uplink and its retained status."""

    def __init__(
        self,
        endpoint: MqttEndpoint,
        uplink: UplinkArgs,
        *,
        commit_timeout_s: float,
    ) -> None:
        farm, agent = uplink["farm"], uplink["agent"]
        self._problems = uplink["problems"]
        self.signals = Signals()
        self._status_topic = status_topic(farm, agent)
        self._committed_topic = committed_topic(farm, agent)
        self._events: EventQueue = queue.SimpleQueue()
        offline = AgentStatus(v=1, farm=farm, agent=agent, state="offline", version=VERSION)
        self._will_payload = encode_status(offline)
        self.session = MqttSession(
            endpoint,
            clean_start=False,
            session_expiry_s=7 * 24 * 3600,
            max_inflight=uplink["window"] + 2,
            will=Will(self._status_topic, self._will_payload),
            on_connected=self._on_connected,
            on_message=self._on_message,
            on_published=self._on_published,
        )
        self.uplink = Uplink(
            publisher=self.session,
            events=self._events,
            commit_timeout_s=commit_timeout_s,
            **uplink,
        )

    # MQTT network thread: only queue events for the uplink thread
    def _on_connected(self, session: MqttSession) -> None:
        if not session.session_present:  # a kept session keeps its subscription
            session.subscribe([self._committed_topic])  # the collector's confirmations, QoS 1
        self._events.put(Connected(session.session_present))
        self.signals.connected()

    def _on_message(self, delivery: Delivery) -> None:
        self._events.put(Confirmation(delivery.topic, delivery.payload))
        self.signals.wake.set()

    def _on_published(self, mid: int, delivered: bool) -> None:
        self._events.put(Puback(mid, delivered))
        self.signals.wake.set()

    @property
    def connected(self) -> bool:
        """The session is connected to the broker now."""
        return self.session.connected

    def start(self) -> None:
        """Start the session's network thread (it connects and reconnects)."""
        self.session.start()

    def stop(self) -> None:
        """Disconnect and stop the network thread."""
        self.session.stop()

    def put_status(self, status: AgentStatus) -> None:
        """Publish ``status`` retained at QoS 1."""
        self._publish_status(encode_status(status))

    def put_final_status(self, status: AgentStatus | None) -> None:
        """Publish the offline status (the last will's, without counters, for ``None``)."""
        self._publish_status(self._will_payload if status is None else encode_status(status))

    def summary(self) -> str | None:
        """Nothing: the MQTT agent logs no summary at stop."""
        return None

    def _publish_status(self, payload: bytes) -> None:
        info = self.session.publish(self._status_topic, payload, qos=1, retain=True)
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
            self._problems.report("status_not_queued", f"paho rc={info.rc}")
