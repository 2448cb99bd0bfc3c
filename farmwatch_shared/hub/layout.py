"""The hub's layout on NATS JetStream, as data: subjects, the readings stream, the presence
bucket, the consumers, and what each user may publish and subscribe to.

``farmwatch-hub apply`` creates the stream, the bucket and the consumers from these definitions
(idempotently: it compares the keys set here with the server's); ``farmwatch-hub users`` writes
the users into the nodes' configuration. The names of the MQTT contract map onto subjects one to
one (``farmwatch/v1/<farm>/<agent>/readings`` ↔ ``farmwatch.v1.<farm>.<agent>.readings``), so the
collector and the alerting service check and decode hub messages with the same contract code.

Durations in the JetStream API are nanoseconds; ``HubLimits`` holds them in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from farmwatch_shared.contract import (
    DEAD_LETTER_TOPIC,
    MAX_PAYLOAD_BYTES,
    parse_topic,
    readings_topic,
    status_topic,
)

SUBJECT_ROOT: Final = "farmwatch.v1"
READINGS_FILTER: Final = f"{SUBJECT_ROOT}.*.*.readings"
HEARTBEAT_SUBJECT: Final = "farmwatch.ops.alerts.heartbeat"
"""The alerting services publish here so that a message reaches their pinned consumer even when
no farm sends anything (a pin is handed over only with a message)."""
DEAD_LETTER_SUBJECT: Final = "farmwatch.deadletter.v1"
"""Core NATS (not stored): what the collector refused, for whoever watches (the quarantine keeps
the whole message)."""
STREAM: Final = "FARMWATCH"
PRESENCE_BUCKET: Final = "farmwatch_presence"
PRESENCE_STREAM: Final = f"KV_{PRESENCE_BUCKET}"
PRESENCE_FILTER: Final = f"$KV.{PRESENCE_BUCKET}.>"
MSG_ID_HEADER: Final = "Nats-Msg-Id"
MARKER_HEADER: Final = "Nats-Marker-Reason"
"""Set on the delete marker the server places when a key ages out (its TTL): the agent's last
will."""
PIN_HEADER: Final = "Nats-Pin-Id"

COLLECTOR_CONSUMER: Final = "collector"
COLLECTOR_PRESENCE_CONSUMER: Final = "collector-presence"
ALERTS_CONSUMER: Final = "alerts"
ALERTS_PRESENCE_CONSUMER: Final = "alerts-presence"
ALERTS_GROUP: Final = "alerts"
"""The alerting consumer's priority group: one pinned client at a time gets its messages."""

COLLECTOR_USER: Final = "farmwatch-collector"
ALERTS_USER: Final = "farmwatch-alerts"
ADMIN_USER: Final = "farmwatch-hub"
SERVICE_USERS: Final = frozenset({COLLECTOR_USER, ALERTS_USER, ADMIN_USER})
ACCOUNT: Final = "FARMWATCH"

NS: Final = 1_000_000_000


def readings_subject(farm: str, agent: str) -> str:
    """Subject an agent publishes its reading batches to."""
    return f"{SUBJECT_ROOT}.{farm}.{agent}.readings"


def presence_key(farm: str, agent: str) -> str:
    """An agent's key in the presence bucket."""
    return f"{farm}.{agent}"


def presence_subject(farm: str, agent: str) -> str:
    """Subject an agent puts its presence (its ``AgentStatus``) to."""
    return f"$KV.{PRESENCE_BUCKET}.{presence_key(farm, agent)}"


def batch_msg_id(farm: str, agent: str, first: int, last: int) -> str:
    """``Nats-Msg-Id`` of a batch: its agent and its first and last sequence numbers. The stream
    drops a batch sent again within its duplicate window; the last number is part of the id
    because a batch cut differently after a restart (more readings after the same first one)
    is another message: dropping it by its first number alone would lose the readings the
    first cut did not carry (stored twice instead, which the database makes one point)."""
    return f"{farm}.{agent}.{first}-{last}"


def inbox_prefix(user: str) -> str:
    """The inbox prefix of ``user``'s connection: each user may subscribe only under its own,
    so nobody reads another's acknowledgements or pull replies."""
    return f"_INBOX_{user}"


def topic_of(subject: str) -> str | None:
    """The MQTT-contract topic of a hub subject (readings, or an agent's presence as its
    ``status`` topic); None for a subject outside the contract."""
    parts = subject.split(".")
    if len(parts) == 5 and parts[0] == "farmwatch" and parts[1] == "v1" and parts[4] == "readings":
        return readings_topic(parts[2], parts[3])
    if len(parts) == 4 and parts[0] == "$KV" and parts[1] == PRESENCE_BUCKET:
        return status_topic(parts[2], parts[3])
    return None


def subject_of(topic: str) -> str | None:
    """The hub subject a service's MQTT-contract publish goes to: the dead-letter topic's
    subject; None for ``committed`` (in the hub an agent's readings are released by the stream's
    acknowledgement, nobody waits for a confirmation) and anything else."""
    if topic == DEAD_LETTER_TOPIC:
        return DEAD_LETTER_SUBJECT
    try:
        farm, agent, leaf = parse_topic(topic)
    except ValueError:
        return None
    return readings_subject(farm, agent) if leaf == "readings" else None


@dataclass(frozen=True)
class HubLimits:
    """The sizes and times of the hub's definitions (``farmwatch-hub apply`` options)."""

    replicas: int = 3
    """Copies of the stream and the bucket (Raft): 3 survives losing one node."""
    max_bytes: int = 8 * 1024**3
    """Stream bytes per node; when full, publishes are refused (agents keep their readings)."""
    duplicate_window_s: float = 1200.0
    """A batch sent again within this window (same ``Nats-Msg-Id``) is stored once."""
    presence_ttl_s: float = 4500.0
    """An agent whose presence was not renewed for this long is offline (its key ages out and
    the server places a marker: the last will). Above the agents' ``nats_presence_interval_s``
    (1800 s) with room for one put that did not arrive: a killed agent reads as offline 45 to
    75 minutes after it died, as an MQTT agent's last will comes 45 minutes after its link."""
    marker_ttl_s: float = 7 * 24 * 3600.0
    """How long that marker stays for a presence consumer that is down to read."""
    ack_wait_s: float = 30.0
    """A message a collector took and did not acknowledge within this is delivered again."""
    max_ack_pending: int = 1000
    """Messages out and unacknowledged, all collectors together: the memory bound."""
    alerts_pinned_ttl_s: float = 20.0
    """The alerting consumer's pin goes to a standby when the active stopped pulling this long."""

    def __post_init__(self) -> None:
        """Check the values."""
        if self.replicas not in (1, 3, 5):
            raise ValueError("replicas: 1, 3 or 5")
        if min(self.duplicate_window_s, self.presence_ttl_s, self.ack_wait_s) <= 0:
            raise ValueError("durations must be positive")
        if self.alerts_pinned_ttl_s < 5:
            raise ValueError("alerts_pinned_ttl_s: at least 5 s (above a pull's expiry)")


def stream_config(limits: HubLimits) -> dict[str, Any]:
    """The readings stream: interest retention (a message goes once every consumer that wants
    it acknowledged it), file storage, ``discard: new`` (a full stream refuses new batches,
    which stay in the agents' outboxes, instead of dropping unconsumed ones)."""
    return {
        "name": STREAM,
        "subjects": [READINGS_FILTER, HEARTBEAT_SUBJECT],
        "retention": "interest",
        "storage": "file",
        "num_replicas": limits.replicas,
        "discard": "new",
        "max_bytes": limits.max_bytes,
        "max_age": 0,
        "max_msg_size": MAX_PAYLOAD_BYTES,
        "duplicate_window": int(limits.duplicate_window_s * NS),
        "deny_delete": True,
    }


def presence_stream_config(limits: HubLimits) -> dict[str, Any]:
    """The presence bucket's stream (a JetStream key-value bucket): one value per agent, aged
    out after ``presence_ttl_s`` with a marker the presence consumers read."""
    return {
        "name": PRESENCE_STREAM,
        "subjects": [PRESENCE_FILTER],
        "retention": "limits",
        "storage": "file",
        "num_replicas": limits.replicas,
        "discard": "new",
        "max_msgs_per_subject": 1,
        "max_age": int(limits.presence_ttl_s * NS),
        "max_msg_size": MAX_PAYLOAD_BYTES,
        "allow_rollup_hdrs": True,
        "deny_delete": True,
        "allow_direct": True,
        "allow_msg_ttl": True,
        "subject_delete_marker_ttl": int(limits.marker_ttl_s * NS),
    }


def _pull(durable: str, limits: HubLimits, **extra: Any) -> dict[str, Any]:
    return {
        "durable_name": durable,
        "ack_policy": "explicit",
        "ack_wait": int(limits.ack_wait_s * NS),
        "max_ack_pending": limits.max_ack_pending,
        "max_deliver": -1,
        "replay_policy": "instant",
        **extra,
    }


def consumer_configs(limits: HubLimits) -> dict[tuple[str, str], dict[str, Any]]:
    """Every durable consumer, by (stream, name)."""
    presence = {"deliver_policy": "last_per_subject", "filter_subject": PRESENCE_FILTER}
    return {
        (STREAM, COLLECTOR_CONSUMER): _pull(
            COLLECTOR_CONSUMER, limits, deliver_policy="all", filter_subject=READINGS_FILTER
        ),
        (PRESENCE_STREAM, COLLECTOR_PRESENCE_CONSUMER): _pull(
            COLLECTOR_PRESENCE_CONSUMER, limits, **presence
        ),
        (STREAM, ALERTS_CONSUMER): _pull(
            ALERTS_CONSUMER,
            limits,
            deliver_policy="all",
            filter_subjects=[READINGS_FILTER, HEARTBEAT_SUBJECT],
            priority_groups=[ALERTS_GROUP],
            priority_policy="pinned_client",
            priority_timeout=int(limits.alerts_pinned_ttl_s * NS),
        ),
        (PRESENCE_STREAM, ALERTS_PRESENCE_CONSUMER): _pull(
            ALERTS_PRESENCE_CONSUMER, limits, **presence
        ),
    }


Permissions = dict[str, dict[str, list[str]]]


def _consumer_rights(stream: str, consumer: str) -> list[str]:
    return [
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}",
        f"$JS.API.CONSUMER.INFO.{stream}.{consumer}",
        f"$JS.ACK.{stream}.{consumer}.>",
    ]


def farm_permissions(farm: str) -> Permissions:
    """A farm's user: publish its own agents' readings and presence, read only its own inbox
    (the stream's acknowledgements). Anything else is refused by the server."""
    return {
        "publish": {
            "allow": [f"{SUBJECT_ROOT}.{farm}.*.readings", f"$KV.{PRESENCE_BUCKET}.{farm}.*"]
        },
        "subscribe": {"allow": [f"{inbox_prefix(farm)}.>"]},
    }


def service_permissions(user: str) -> Permissions:
    """The collector's, the alerting service's and the administrator's rights."""
    if user == COLLECTOR_USER:
        publish = [
            *_consumer_rights(STREAM, COLLECTOR_CONSUMER),
            *_consumer_rights(PRESENCE_STREAM, COLLECTOR_PRESENCE_CONSUMER),
            DEAD_LETTER_SUBJECT,
        ]
    elif user == ALERTS_USER:
        publish = [
            *_consumer_rights(STREAM, ALERTS_CONSUMER),
            *_consumer_rights(PRESENCE_STREAM, ALERTS_PRESENCE_CONSUMER),
            f"$JS.API.CONSUMER.UNPIN.{STREAM}.{ALERTS_CONSUMER}",
            HEARTBEAT_SUBJECT,
        ]
    elif user == ADMIN_USER:
        publish = ["$JS.API.>", DEAD_LETTER_SUBJECT]
        return {
            "publish": {"allow": publish},
            "subscribe": {"allow": [f"{inbox_prefix(user)}.>", DEAD_LETTER_SUBJECT]},
        }
    else:
        raise ValueError(f"{user}: not a service user ({', '.join(sorted(SERVICE_USERS))})")
    return {"publish": {"allow": publish}, "subscribe": {"allow": [f"{inbox_prefix(user)}.>"]}}


def permissions_of(user: str) -> Permissions:
    """Rights of a service user, or of the farm whose id ``user`` is."""
    return service_permissions(user) if user in SERVICE_USERS else farm_permissions(user)
