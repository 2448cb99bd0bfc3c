"""MQTT v5 for every farmwatch service: a session (a paho client plus a network thread that
reconnects with backoff and jitter) and, on top of it, the one consumer the collector and the
alerting service use (subscribe on every connect, deliveries, acknowledge when the caller says).

Nobody outside this module touches paho's client.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import SecretStr

from farmwatch_shared.backoff import Backoff
from farmwatch_shared.tls_resume import ResumingContext, client_context

__all__ = [
    "MQTT_V5",
    "MQTT_V311",
    "Consumer",
    "Delivery",
    "DeliveryHandler",
    "MqttConsumer",
    "MqttEndpoint",
    "MqttSession",
    "PublishHandler",
    "PublishInfo",
    "Will",
]

log = logging.getLogger(__name__)
MQTT_V5 = 5
"""MQTT 5, what farmwatch's own broker and ChirpStack's Mosquitto speak."""
MQTT_V311 = 4
"""MQTT 3.1.1 (protocol level 4): The Things Stack's MQTT server speaks only this."""


@dataclass(frozen=True)
class Delivery:
    """One MQTT message as received; a consumer acknowledges it with ``ack`` once handled."""

    mid: int
    qos: int
    topic: str
    payload: bytes
    retain: bool = False
    """Set on a retained message the broker replays at a subscribe (not on a live one)."""


DeliveryHandler = Callable[[Delivery], None]
"""Called from the network thread with each message received: keep it short (enqueue)."""
PublishHandler = Callable[[int, bool], None]
"""Called from the network thread with (mid, delivered) when the broker acknowledged a publish:
``delivered`` only for reason 0 (success); 0x10 "no matching subscribers" means nobody will
receive the message, and every failure reason means it was not taken: both are False."""


@dataclass(frozen=True)
class MqttEndpoint:
    """Where and how to connect."""

    host: str
    port: int
    client_id: str
    username: str | None = None
    password: SecretStr | None = None
    tls_ca_file: Path | None = None
    keepalive_s: int = 30


@dataclass(frozen=True)
class Will:
    """Last-will message the broker publishes if the session dies without a clean disconnect."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


class PublishInfo(Protocol):
    """What ``publish`` returns: ``rc`` is paho's result code (``MQTT_ERR_SUCCESS``, ...)."""

    @property
    def rc(self) -> int:
        """Whether paho queued the message."""
        ...

    @property
    def mid(self) -> int:
        """The message id the broker's acknowledgement will carry."""
        ...


def _network_thread_writes(client: paho.Client, userdata: Any, sock: Any) -> None:
    """Nothing to do: ``MqttSession``'s network thread sees the queued packet and sends it."""


class MqttSession:
    """Owns a paho client and its network thread.

    The thread connects, runs paho's loop, and on any loss of connection waits a jittered,
    growing delay before reconnecting. Callbacks run on that thread: keep them short. A caller
    that drives the session from its own thread instead calls ``connect_once`` and ``loop_once``.
    ``protocol`` is MQTT 5 (``MQTT_V5``) or 3.1.1 (``MQTT_V311``, for brokers that speak nothing
    newer; ``session_expiry_s`` and ``receive_maximum`` then do not exist on the wire).
    """

    def __init__(
        self,
        endpoint: MqttEndpoint,
        *,
        clean_start: bool,
        session_expiry_s: int,
        receive_maximum: int | None = None,
        manual_ack: bool = False,
        max_inflight: int = 20,
        max_queued: int | None = None,
        will: Will | None = None,
        on_connected: Callable[[MqttSession], None] | None = None,
        on_message: DeliveryHandler | None = None,
        on_published: PublishHandler | None = None,
        backoff: Backoff | None = None,
        protocol: int = MQTT_V5,
    ) -> None:
        if protocol not in (MQTT_V5, MQTT_V311):
            raise ValueError(f"MQTT protocol level {protocol}: only 5 and 4 (3.1.1)")
        self.endpoint = endpoint
        self._protocol = protocol
        self._clean_start = clean_start
        self._session_expiry_s = session_expiry_s
        self._receive_maximum = receive_maximum
        self._on_connected = on_connected
        self._on_message = on_message
        self._on_published = on_published
        self._backoff = backoff or Backoff(initial_s=0.5, max_s=30.0)
        self._connected = threading.Event()
        self.subscribed = threading.Event()
        """Set when the broker granted a subscription on the current connection."""
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._ever_connected = False
        self.session_present = False
        """Whether the broker kept our session at the last connect (CONNACK), read in
        ``on_connected``."""

        # MQTT 3.1.1 has no session expiry nor clean start: its persistent session is
        # "clean session" off, kept by the broker for as long as it chooses
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=endpoint.client_id,
            protocol=paho.MQTTv5 if protocol == MQTT_V5 else paho.MQTTv311,
            clean_session=None if protocol == MQTT_V5 else clean_start,
            manual_ack=manual_ack,
        )
        client.max_inflight_messages_set(max_inflight)
        client.max_queued_messages_set(max_inflight if max_queued is None else max_queued)
        if endpoint.username is not None:
            secret = endpoint.password.get_secret_value() if endpoint.password else None
            client.username_pw_set(endpoint.username, secret)
        self._tls: ResumingContext | None = None
        if endpoint.tls_ca_file is not None:  # a reconnect resumes the TLS session (tls_resume)
            self._tls = client_context(str(endpoint.tls_ca_file))
            client.tls_set_context(self._tls)
        if will is not None:
            client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_message = self._handle_message
        client.on_publish = self._handle_publish
        client.on_subscribe = self._handle_subscribe
        # paho writes to the socket from the *calling* thread (publish, ack) unless it runs its
        # own thread or an external loop is registered; its sends happen outside its locks, so
        # two threads could interleave a partial write. Registering this (no-op) hook makes
        # paho only queue the packet and wake our network thread, which does all the writing.
        client.on_socket_register_write = _network_thread_writes
        self._client = client

    @property
    def connected(self) -> bool:
        """Whether the broker accepted our connection and it is still up."""
        return self._connected.is_set()

    def wait_connected(self, timeout_s: float) -> bool:
        """Block until connected or the timeout passes; return whether connected."""
        return self._connected.wait(timeout_s)

    @property
    def tls_resumed(self) -> bool:
        """Whether the current connection resumed an earlier TLS session (tls_resume)."""
        return self._tls is not None and self._tls.resumed()

    def start(self) -> None:
        """Start the network thread (it connects in the background)."""
        self._thread = threading.Thread(
            target=self._run, name=f"mqtt-{self.endpoint.client_id}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Disconnect cleanly (no last will) and stop the network thread."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        else:
            self._disconnect()
        self._connected.clear()

    def publish(
        self, topic: str, payload: bytes, qos: int = 1, retain: bool = False
    ) -> paho.MQTTMessageInfo:
        """Hand a message to paho; the caller must check ``.rc`` of the returned info."""
        return self._client.publish(topic, payload, qos=qos, retain=retain)

    def subscribe(self, topic_filters: Sequence[str]) -> None:
        """Subscribe to ``topic_filters`` at QoS 1; ``subscribed`` is set when granted."""
        result, _ = self._client.subscribe([(topic, 1) for topic in topic_filters])
        if result != paho.MQTT_ERR_SUCCESS:
            log.error("La suscripción falló / subscribe failed: rc=%s", result)

    def ack(self, delivery: Delivery) -> None:
        """Acknowledge a delivery (a session created with ``manual_ack``); QoS 0 needs none."""
        if delivery.qos > 0:
            self._client.ack(delivery.mid, delivery.qos)

    def connect_once(self) -> bool:
        """One connection attempt from the calling thread (instead of ``start``)."""
        return self._try_connect()

    def loop_once(self, timeout_s: float) -> bool:
        """One round of network traffic from the calling thread; False when the connection is
        lost."""
        return self._client.loop(timeout=timeout_s) == paho.MQTT_ERR_SUCCESS

    def _connect_properties(self) -> Properties:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self._session_expiry_s
        if self._receive_maximum is not None:
            props.ReceiveMaximum = self._receive_maximum
        return props

    def _run(self) -> None:
        while not self._stopping.is_set():
            if not self._try_connect():
                self._stopping.wait(self._backoff.next_delay())
                continue
            while not self._stopping.is_set():
                if not self.loop_once(0.1):
                    break
            self._connected.clear()
            if not self._stopping.is_set():
                self._stopping.wait(self._backoff.next_delay())
        self._disconnect()

    def _disconnect(self) -> None:
        client = self._client
        if client.is_connected():
            client.disconnect()
            for _ in range(20):
                if client.loop(timeout=0.05) != paho.MQTT_ERR_SUCCESS:
                    break

    def _try_connect(self) -> bool:
        try:
            if self._ever_connected:
                self._client.reconnect()
            elif self._protocol == MQTT_V311:
                self._client.connect(
                    self.endpoint.host, self.endpoint.port, keepalive=self.endpoint.keepalive_s
                )
                self._ever_connected = True
            else:
                self._client.connect(
                    self.endpoint.host,
                    self.endpoint.port,
                    keepalive=self.endpoint.keepalive_s,
                    clean_start=self._clean_start,
                    properties=self._connect_properties(),
                )
                self._ever_connected = True
        except (OSError, ssl.SSLError) as exc:
            log.warning(
                "Sin conexión al broker %s:%s / cannot reach broker: %s",
                self.endpoint.host,
                self.endpoint.port,
                exc,
            )
            return False
        return True

    def _handle_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            log.error("El broker rechazó la conexión / broker refused the connection: %s", reason)
            return
        self._backoff.reset()
        if self._tls is not None:
            self._tls.remember()
        self.session_present = bool(flags.session_present)
        self._connected.set()
        log.info(
            "Conectado al broker / connected to broker %s:%s as %s (session present: %s)",
            self.endpoint.host,
            self.endpoint.port,
            self.endpoint.client_id,
            flags.session_present,
        )
        if self._on_connected is not None:
            self._on_connected(self)

    def _handle_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        self._connected.clear()
        self.subscribed.clear()
        if not self._stopping.is_set():
            log.warning("Desconectado del broker / disconnected from broker: %s", reason)

    def _handle_message(
        self, client: paho.Client, userdata: Any, message: paho.MQTTMessage
    ) -> None:
        if self._on_message is not None:
            self._on_message(
                Delivery(
                    message.mid,
                    message.qos,
                    message.topic,
                    bytes(message.payload),
                    bool(message.retain),
                )
            )

    def _handle_subscribe(
        self, client: paho.Client, userdata: Any, mid: int, reasons: Any, properties: Any
    ) -> None:
        refused = [reason for reason in reasons if reason.is_failure]
        if refused:
            log.error(
                "El broker rechazó la suscripción / broker refused a subscription: %s", refused
            )
        else:
            log.info("Suscrito / subscribed (%d topics)", len(reasons))
            self.subscribed.set()

    def _handle_publish(
        self, client: paho.Client, userdata: Any, mid: int, reason: Any, properties: Any
    ) -> None:
        if self._on_published is not None:
            self._on_published(mid, reason.value == 0)


class Consumer(Protocol):
    """What a service that consumes MQTT messages needs from its client."""

    @property
    def connected(self) -> bool:
        """Whether the broker accepted the connection and it is still up."""
        ...

    @property
    def subscribed(self) -> threading.Event:
        """Set when the broker granted the subscriptions on the current connection."""
        ...

    def wait_connected(self, timeout_s: float) -> bool:
        """Block until connected or the timeout passes; return whether connected."""
        ...

    def start(self, on_delivery: DeliveryHandler) -> None:
        """Connect in the background and hand every message received to ``on_delivery``."""
        ...

    def stop(self, timeout_s: float = 5.0) -> None:
        """Disconnect cleanly; what was not acknowledged is redelivered to the next session."""
        ...

    def ack(self, delivery: Delivery) -> None:
        """Acknowledge ``delivery``: the broker forgets it."""
        ...

    def publish(
        self, topic: str, payload: bytes, qos: int = 1, retain: bool = False
    ) -> PublishInfo:
        """Hand a message to the client; the caller checks ``.rc`` of the returned info."""
        ...


class MqttConsumer:
    """The farmwatch consumer: a persistent session (``clean_start`` off) that subscribes to its
    topic filters at QoS 1 on every connect and acknowledges a message only when told to
    (``ack``), so what was not handled is redelivered. ``receive_maximum`` bounds the messages
    the broker sends before they are acknowledged."""

    def __init__(
        self,
        endpoint: MqttEndpoint,
        *,
        topic_filters: Sequence[str],
        session_expiry_s: int,
        receive_maximum: int,
        max_inflight: int,
        backoff: Backoff | None = None,
        protocol: int = MQTT_V5,
    ) -> None:
        self._topic_filters = list(topic_filters)
        self._on_delivery: DeliveryHandler | None = None
        self._session = MqttSession(
            endpoint,
            clean_start=False,
            session_expiry_s=session_expiry_s,
            receive_maximum=receive_maximum,
            manual_ack=True,
            max_inflight=max_inflight,
            on_connected=self._subscribe,
            on_message=self._deliver,
            backoff=backoff,
            protocol=protocol,
        )

    @property
    def connected(self) -> bool:
        """Whether the broker accepted the connection and it is still up."""
        return self._session.connected

    @property
    def subscribed(self) -> threading.Event:
        """Set when the broker granted the subscriptions on the current connection."""
        return self._session.subscribed

    def wait_connected(self, timeout_s: float) -> bool:
        """Block until connected or the timeout passes; return whether connected."""
        return self._session.wait_connected(timeout_s)

    def start(self, on_delivery: DeliveryHandler) -> None:
        """Connect in the background and hand every message received to ``on_delivery``."""
        self._on_delivery = on_delivery
        self._session.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Disconnect cleanly; what was not acknowledged is redelivered to the next session."""
        self._session.stop(timeout_s)

    def ack(self, delivery: Delivery) -> None:
        """Acknowledge ``delivery``: the broker forgets it."""
        self._session.ack(delivery)

    def publish(
        self, topic: str, payload: bytes, qos: int = 1, retain: bool = False
    ) -> PublishInfo:
        """Hand a message to paho; the caller checks ``.rc`` of the returned info."""
        return self._session.publish(topic, payload, qos=qos, retain=retain)

    def _subscribe(self, session: MqttSession) -> None:
        session.subscribe(self._topic_filters)

    def _deliver(self, delivery: Delivery) -> None:
        if self._on_delivery is not None:
            self._on_delivery(delivery)
