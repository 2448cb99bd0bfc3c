"""A byte- and segment-counting TCP proxy (the bill benchmark, ``benchmarks/bill.py``, and the
tests of what crosses a link), and the broker's TLS listener for local servers.

It stands between an MQTT client and the broker's TLS listener, forwards both directions
unchanged, and reads the kernel's own per-socket counters of its client-side socket
(``getsockopt(TCP_INFO)``, the ``struct tcp_info`` that ``ss -ti`` prints: ``bytes_sent``,
``bytes_received``, ``segs_out``, ``segs_in``), so every TCP segment on the client's link is
counted, pure ACKs, retransmissions, FINs and RSTs included. The listening socket announces an
MSS of 1460 (a 1,500-byte MTU, as on a cellular bearer) instead of loopback's 65,483, so a TLS
handshake flight is cut into the segments it would be on the air. ``cut`` drops the link the
way a lost radio bearer does, with a reset on both sides.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from farmwatch_local.services import REPO_ROOT, SHIPPED_BROKER_CONF

TCP_IP_HEADER_BYTES = 52
"""Per segment on the wire: IPv4 (20) + TCP (20) + the timestamp option (12) Linux sends."""
MSS = 1460
_TCP_INFO_LEN = 232
# offsets in Linux's struct tcp_info (include/uapi/linux/tcp.h)
_BYTES_RECEIVED = 128
_SEGS_OUT = 136
_SEGS_IN = 140
_BYTES_SENT = 200


@dataclass(frozen=True)
class Counts:
    """What crossed the client's link: TCP payload (here TLS records) and segments."""

    bytes_up: int = 0
    """Client → broker payload bytes."""
    bytes_down: int = 0
    segs_up: int = 0
    segs_down: int = 0

    def __add__(self, other: Counts) -> Counts:
        """Sum of two counts."""
        return Counts(
            self.bytes_up + other.bytes_up,
            self.bytes_down + other.bytes_down,
            self.segs_up + other.segs_up,
            self.segs_down + other.segs_down,
        )

    def __sub__(self, other: Counts) -> Counts:
        """Difference of two counts."""
        return Counts(
            self.bytes_up - other.bytes_up,
            self.bytes_down - other.bytes_down,
            self.segs_up - other.segs_up,
            self.segs_down - other.segs_down,
        )

    @property
    def payload(self) -> int:
        """TLS bytes, both directions."""
        return self.bytes_up + self.bytes_down

    @property
    def segments(self) -> int:
        """TCP segments, both directions."""
        return self.segs_up + self.segs_down

    @property
    def wire(self) -> int:
        """Bytes on the wire: payload plus the TCP/IP headers of every segment."""
        return self.payload + self.segments * TCP_IP_HEADER_BYTES


def tcp_counts(sock: socket.socket) -> Counts:
    """The kernel's counters of a socket the proxy accepted (its peer is the client)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_LEN)
    if len(info) < _BYTES_SENT + 8:
        raise OSError("this kernel's tcp_info has no bytes_sent (Linux ≥ 4.19 needed)")
    (received,) = struct.unpack_from("<Q", info, _BYTES_RECEIVED)
    segs_out, segs_in = struct.unpack_from("<II", info, _SEGS_OUT)
    (sent,) = struct.unpack_from("<Q", info, _BYTES_SENT)
    return Counts(bytes_up=received, bytes_down=sent, segs_up=segs_in, segs_down=segs_out)


class _Link:
    """One client connection and its upstream connection."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.final: Counts | None = None
        self.lock = threading.Lock()

    def counts(self) -> Counts:
        with self.lock:
            if self.final is not None:
                return self.final
            try:
                return tcp_counts(self.client)
            except OSError:
                return Counts()

    def close(self, reset: bool) -> None:
        with self.lock:
            if self.final is not None:
                return
            try:
                self.final = tcp_counts(self.client)
            except OSError:
                self.final = Counts()
            for sock in (self.client, self.upstream):
                if reset:  # SO_LINGER 0: close sends RST, as a dropped bearer ends a flow
                    with contextlib.suppress(OSError):
                        sock.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                with contextlib.suppress(OSError):
                    sock.close()


class CountingProxy:
    """Forwards 127.0.0.1:``port`` to ``upstream_port`` and counts the client side."""

    def __init__(self, upstream_port: int) -> None:
        self._upstream_port = upstream_port
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, MSS)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self.port: int = self._listener.getsockname()[1]
        self._links: list[_Link] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.accepted = threading.Semaphore(0)
        """Released once per accepted connection."""
        self._thread = threading.Thread(target=self._accept, name="bill-proxy", daemon=True)
        self._thread.start()

    def totals(self) -> Counts:
        """Everything counted so far, over every connection."""
        with self._lock:
            links = list(self._links)
        total = Counts()
        for link in links:
            total = total + link.counts()
        return total

    def connections(self) -> int:
        """Connections accepted so far."""
        with self._lock:
            return len(self._links)

    def latest(self) -> Counts:
        """The counters of the newest connection alone."""
        with self._lock:
            link = self._links[-1] if self._links else None
        return link.counts() if link is not None else Counts()

    def retarget(self, upstream_port: int) -> None:
        """Forward the connections accepted from now on to ``upstream_port``."""
        self._upstream_port = upstream_port

    def cut(self) -> None:
        """Drop every open connection with a reset on both sides."""
        with self._lock:
            links = list(self._links)
        for link in links:
            link.close(reset=True)

    def close(self) -> None:
        """Stop accepting and close every connection."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self.cut()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self._upstream_port), 10)
            except OSError:
                client.close()
                continue
            link = _Link(client, upstream)
            with self._lock:
                self._links.append(link)
            self.accepted.release()
            threading.Thread(target=self._pump, args=(link,), daemon=True).start()

    def _pump(self, link: _Link) -> None:
        pairs = {link.client: link.upstream, link.upstream: link.client}
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select(list(pairs), [], [], 0.5)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    pairs[sock].sendall(data)
        except OSError:
            return
        finally:
            link.close(reset=False)


MAKE_CERTS = REPO_ROOT / "deploy" / "mosquitto" / "make-tls-certs.sh"


def make_certificates(directory: Path) -> Path:
    """The broker's CA and server certificate for 127.0.0.1, made by the shipped script
    (``deploy/mosquitto/make-tls-certs.sh``); returns the CA file."""
    subprocess.run(
        ["sh", str(MAKE_CERTS), str(directory), "127.0.0.1", "localhost"],
        check=True,
        capture_output=True,
    )
    return directory / "ca.crt"


def tls_listener(port: int, certs: Path) -> str:
    """The shipped TLS listener's lines (``deploy/mosquitto/conf.d/farmwatch.conf``: port,
    certificate files, TLS version), bound to loopback on ``port``, for ``MosquittoServer``'s
    ``extra_config``."""
    files = {"cafile": "ca.crt", "certfile": "server.crt", "keyfile": "server.key"}
    lines = []
    in_tls = False
    for line in SHIPPED_BROKER_CONF.read_text(encoding="utf-8").splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "listener":
            in_tls = words[1] == "8883"
            if in_tls:
                lines.append(f"listener {port} 127.0.0.1")
        elif in_tls and words[0] in files:
            lines.append(f"{words[0]} {certs / files[words[0]]}")
        elif in_tls and words[0] == "tls_version":
            lines.append(line)
    return "\n".join(lines)
