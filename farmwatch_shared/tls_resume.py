"""TLS session resumption for MQTT and NATS clients on paid links.

A full TLS 1.3 handshake with the broker sends its certificate chain: about 1.3 kB more, both
ways, than a resumed one (measured through the bill benchmark's proxy: 2,532 against 1,285 TLS
bytes for the handshake and MQTT CONNECT). paho wraps every new socket with its SSL context and
offers no session, and neither does asyncio's TLS (nats-py), which wraps memory BIOs; so
``ResumingContext`` does it for both: it offers the session of the last connection
(a TLS 1.3 session ticket, or a TLS 1.2 session id) to the next one, which the server accepts
while the ticket is valid (OpenSSL's default lifetime, Mosquitto: 2 hours; Go's, nats-server:
7 days) and answers with a full handshake otherwise. Certificate checks are unchanged: a
resumed session was verified when it was made, for the same server name.
"""

from __future__ import annotations

import socket
import ssl
import threading
from typing import Any


class ResumingContext(ssl.SSLContext):
    """A client ``SSLContext`` that offers the previous connection's session to the next."""

    def __init__(self, protocol: int = ssl.PROTOCOL_TLS_CLIENT) -> None:
        # ``SSLContext.__new__`` takes the protocol; there is no ``__init__`` to call
        self._lock = threading.Lock()
        self._session: ssl.SSLSession | None = None
        self._last: ssl.SSLSocket | ssl.SSLObject | None = None

    def remember(self) -> None:
        """Keep the current connection's session for the next one; call once data has been
        read on it (TLS 1.3 tickets come after the handshake), e.g. on the CONNACK or, on
        NATS, once connected (the server's PONG was read)."""
        with self._lock:
            session = self._last.session if self._last is not None else None
            if session is not None:
                self._session = session

    def resumed(self) -> bool:
        """Whether the newest connection resumed a session (no certificate exchanged)."""
        with self._lock:
            return self._last is not None and bool(self._last.session_reused)

    def offered(self) -> bool:
        """Whether a session will be offered to the next connection."""
        return self._session is not None

    def wrap_socket(self, sock: socket.socket, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        """Wrap ``sock`` as ``SSLContext.wrap_socket`` does, offering the kept session."""
        with self._lock:
            if self._session is not None and kwargs.get("session") is None:
                kwargs["session"] = self._session
            wrapped = super().wrap_socket(sock, *args, **kwargs)
            self._last = wrapped
            return wrapped

    def wrap_bio(
        self, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO, *args: Any, **kwargs: Any
    ) -> ssl.SSLObject:
        """Wrap a pair of memory BIOs as ``SSLContext.wrap_bio`` does (asyncio's TLS),
        offering the kept session."""
        with self._lock:
            if self._session is not None and kwargs.get("session") is None:
                kwargs["session"] = self._session
            wrapped = super().wrap_bio(incoming, outgoing, *args, **kwargs)
            self._last = wrapped
            return wrapped


def client_context(ca_file: str) -> ResumingContext:
    """What paho's ``tls_set(ca_certs=..., tls_version=PROTOCOL_TLS_CLIENT)`` builds (the CA's
    certificates, certificate and host name required), resuming sessions."""
    context = ResumingContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=ca_file)
    return context
