"""Where and how a service reaches the hub (no nats-py here: the settings import it)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from farmwatch_shared.tls_resume import ResumingContext


@dataclass(frozen=True)
class NatsEndpoint:
    """Where and how to connect: every node's URL (``nats://`` or ``tls://host:4222``)."""

    servers: tuple[str, ...]
    name: str
    """The connection's name (shown by the server's monitoring)."""
    user: str | None = None
    password: SecretStr | None = None
    tls_ca_file: Path | None = None
    connect_timeout_s: float = 5.0
    reconnect_wait_s: float = 1.0
    ping_interval_s: float = 10.0

    def __post_init__(self) -> None:
        """Check the values."""
        if not self.servers:
            raise ValueError("no NATS server URL (nats_servers)")
        for url in self.servers:
            if not url.startswith(("nats://", "tls://")):
                raise ValueError(f"{url!r}: a NATS URL is nats://host:port or tls://host:port")

    @property
    def inbox_prefix(self) -> str:
        """The connection's inbox prefix: ``_INBOX_<user>`` (what its rights allow)."""
        return f"_INBOX_{self.user}" if self.user else "_INBOX"

    def tls_context(self) -> ResumingContext | None:
        """A client TLS context trusting ``tls_ca_file`` (loaded now: a missing or unreadable
        file raises OSError / ssl.SSLError, which ``--check-config`` reports), as
        ``ssl.create_default_context`` makes it, that resumes the TLS session on a reconnect
        (``farmwatch_shared/tls_resume.py``: no certificate chain again, ~1.3 kB less)."""
        if self.tls_ca_file is None:
            return None
        context = ResumingContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            context.load_verify_locations(cafile=str(self.tls_ca_file))
        except OSError as exc:  # ssl names neither the setting nor the file
            raise OSError(f"nats_tls_ca_file {self.tls_ca_file}: {exc.strerror or exc}") from None
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context
