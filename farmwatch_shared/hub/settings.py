"""Settings of the hub transport, shared by the agent, the collector and the alerting service
(``FARMWATCH_EDGE_TRANSPORT``, ``FARMWATCH_EDGE_NATS_SERVERS``, …; docs/configuration.md).
MQTT stays the default: with ``transport = "mqtt"`` none of these is read."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, model_validator

from farmwatch_shared.hub.endpoint import NatsEndpoint
from farmwatch_shared.settings import is_loopback_host, load_secret_files, one_source_per_secret


class HubSettings(BaseModel):
    """Which transport, and how to reach the hub's nodes."""

    transport: Literal["mqtt", "jetstream"] = "mqtt"
    """``jetstream``: the hub (a NATS JetStream cluster, docs/scale-out.md) instead of MQTT."""
    nats_servers: str = ""
    """Every node's URL, comma-separated: ``tls://hub1.example.org:4222,tls://hub2…``; the
    client reconnects across them (and the nodes the cluster announces)."""
    nats_username: str | None = None
    """An agent's: its farm id (``farmwatch-hub users`` creates one per farm)."""
    nats_password: SecretStr | None = None
    nats_password_file: Path | None = None
    nats_tls_ca_file: Path | None = None
    """The hub's CA certificate (``deploy/nats/make-tls-certs.sh``): with ``tls://`` URLs."""
    nats_presence_interval_s: float = Field(default=1800.0, gt=0)
    """How often an agent puts its presence (and when it connects); keep it well below the
    bucket's TTL (``farmwatch-hub apply --presence-ttl-s``, 4500 s) or the agent reads as
    offline between two puts. The batches are its sign of life in between; a put costs about
    560 bytes on the wire (docs/scale-out.md, "Cellular links"). (``status_interval_s`` is the
    MQTT status's.)"""
    nats_ping_interval_s: float = Field(default=10.0, gt=0)
    """How often the client pings the node it is connected to, whatever else it sends (nats-py
    does not skip a ping for traffic); three unanswered pings and it reconnects to another.
    The agent's default is far longer (``EdgeSettings``): a ping is 212 bytes on its link."""
    nats_ack_timeout_s: float = Field(default=10.0, gt=0, le=300)
    """How long an agent's publish waits for the stream's acknowledgement before the batch is
    sent again (a leader election takes 2–5 s)."""

    @model_validator(mode="before")
    @classmethod
    def _one_nats_password(cls, data: Any) -> Any:
        return one_source_per_secret(data, ("nats_password",))

    @model_validator(mode="after")
    def _hub_reachable(self) -> HubSettings:
        load_secret_files(self, ("nats_password",))
        if self.transport == "jetstream":
            self.nats_endpoint("check")  # raises ValueError for missing or malformed URLs
        return self

    def nats_urls(self) -> tuple[str, ...]:
        """The nodes' URLs."""
        return tuple(url.strip() for url in self.nats_servers.split(",") if url.strip())

    def nats_endpoint(self, name: str) -> NatsEndpoint:
        """The hub endpoint these settings describe (the connection called ``name``)."""
        return NatsEndpoint(
            servers=self.nats_urls(),
            name=name,
            user=self.nats_username,
            password=self.nats_password,
            tls_ca_file=self.nats_tls_ca_file,
            ping_interval_s=self.nats_ping_interval_s,
        )

    def nats_cleartext_warning(self) -> str | None:
        """A warning when the hub password travels in plain text over a network."""
        if self.transport != "jetstream":
            return None
        plain = [
            url
            for url in self.nats_urls()
            if url.startswith("nats://")
            and not is_loopback_host(url.removeprefix("nats://").rsplit(":", 1)[0])
        ]
        if not plain:
            return None
        return (
            f"NATS sin TLS hacia {', '.join(plain)}: la contraseña viaja en claro / NATS without "
            f"TLS to {', '.join(plain)}: the password travels in plain text (use tls:// URLs "
            "and nats_tls_ca_file)"
        )
