"""Create the hub's stream, presence bucket and consumers, idempotently, through the JetStream
API: what is missing is created, what differs from ``layout`` (in the keys it sets) is updated,
what matches is left alone. Run by ``farmwatch-hub apply`` and by the tests' cluster."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from nats.aio.client import Client

from farmwatch_shared.hub.layout import (
    HubLimits,
    consumer_configs,
    presence_stream_config,
    stream_config,
)

STREAM_NOT_FOUND = 10059
CONSUMER_NOT_FOUND = 10014

Action = Literal["created", "updated", "unchanged"]


class HubApiError(RuntimeError):
    """The JetStream API refused a request; ``code`` is its error code."""

    def __init__(self, what: str, error: dict[str, Any]) -> None:
        super().__init__(f"{what}: {error.get('description', error)} ({error.get('err_code')})")
        self.code = int(error.get("err_code", 0))


@dataclass(frozen=True)
class Change:
    """What ``apply_layout`` did to one definition."""

    kind: Literal["stream", "consumer"]
    name: str
    action: Action


async def _api(client: Client, subject: str, body: dict[str, Any] | None, timeout_s: float) -> Any:
    payload = json.dumps(body).encode() if body is not None else b""
    reply = await client.request(f"$JS.API.{subject}", payload, timeout=timeout_s)
    answer = json.loads(reply.data)
    if "error" in answer:
        raise HubApiError(subject, answer["error"])
    return answer


def _differs(desired: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """The keys of ``desired`` the server holds otherwise (lists compared as sets)."""
    different = []
    for key, value in desired.items():
        held = actual.get(key)
        if isinstance(value, list) and isinstance(held, list):
            if sorted(map(str, value)) != sorted(map(str, held)):
                different.append(key)
        elif held != value:
            different.append(key)
    return different


async def ensure_stream(client: Client, config: dict[str, Any], timeout_s: float) -> Action:
    """Create or update one stream."""
    name = config["name"]
    try:
        info = await _api(client, f"STREAM.INFO.{name}", None, timeout_s)
    except HubApiError as exc:
        if exc.code != STREAM_NOT_FOUND:
            raise
        await _api(client, f"STREAM.CREATE.{name}", config, timeout_s)
        return "created"
    if not _differs(config, info["config"]):
        return "unchanged"
    await _api(client, f"STREAM.UPDATE.{name}", {**info["config"], **config}, timeout_s)
    return "updated"


async def ensure_consumer(
    client: Client, stream: str, config: dict[str, Any], timeout_s: float
) -> Action:
    """Create or update one durable consumer."""
    name = config["durable_name"]
    try:
        info = await _api(client, f"CONSUMER.INFO.{stream}.{name}", None, timeout_s)
    except HubApiError as exc:
        if exc.code != CONSUMER_NOT_FOUND:
            raise
        body = {"stream_name": stream, "config": config, "action": "create"}
        await _api(client, f"CONSUMER.CREATE.{stream}.{name}", body, timeout_s)
        return "created"
    if not _differs(config, info["config"]):
        return "unchanged"
    body = {"stream_name": stream, "config": {**info["config"], **config}, "action": "update"}
    await _api(client, f"CONSUMER.CREATE.{stream}.{name}", body, timeout_s)
    return "updated"


async def apply_layout(client: Client, limits: HubLimits, timeout_s: float = 10.0) -> list[Change]:
    """Every definition of the hub, created or brought up to date; what was done to each."""
    changes = []
    for config in (stream_config(limits), presence_stream_config(limits)):
        action = await ensure_stream(client, config, timeout_s)
        changes.append(Change("stream", config["name"], action))
    for (stream, name), config in consumer_configs(limits).items():
        action = await ensure_consumer(client, stream, config, timeout_s)
        changes.append(Change("consumer", f"{stream}/{name}", action))
    return changes


async def stream_info(client: Client, name: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """A stream's info (``cluster.leader`` names the node leading it)."""
    info: dict[str, Any] = await _api(client, f"STREAM.INFO.{name}", None, timeout_s)
    return info


async def consumer_info(
    client: Client, stream: str, name: str, timeout_s: float = 5.0
) -> dict[str, Any]:
    """A consumer's info (``num_pending``, ``num_ack_pending``, ``num_redelivered``, …)."""
    info: dict[str, Any] = await _api(client, f"CONSUMER.INFO.{stream}.{name}", None, timeout_s)
    return info
