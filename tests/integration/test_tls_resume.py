"""A reconnect after a link drop resumes the TLS session (``farmwatch_shared/tls_resume.py``):
the broker does not send its certificate again, which on a paid link is most of a reconnect."""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import SecretStr
from support.waiting import wait_for

from farmwatch_local.services import MosquittoServer, free_port
from farmwatch_local.wire import CountingProxy, make_certificates, tls_listener
from farmwatch_shared.mqtt import MqttEndpoint, MqttSession


def test_a_reconnect_through_a_dropped_link_resumes_the_tls_session(tmp_path: Path) -> None:
    ca_file = make_certificates(tmp_path / "tls")
    tls_port = free_port()
    password = secrets.token_hex(12)
    broker = MosquittoServer(
        data_dir=tmp_path / "mosquitto",
        users={"oax-mixteca": password},
        extra_config=tls_listener(tls_port, tmp_path / "tls"),
    )
    broker.start()
    proxy = CountingProxy(tls_port)
    session = MqttSession(
        MqttEndpoint(
            "127.0.0.1",
            proxy.port,
            "test-tls-resume",
            "oax-mixteca",
            SecretStr(password),
            tls_ca_file=ca_file,
        ),
        clean_start=True,
        session_expiry_s=0,
    )
    session.start()
    try:
        assert session.wait_connected(20)
        assert not session.tls_resumed
        first = proxy.latest()
        proxy.cut()
        wait_for(lambda: proxy.connections() == 2 and session.connected, what="reconnected")
        assert session.tls_resumed
        second = proxy.latest()
        # the server's certificate chain is not sent again
        assert second.bytes_down < first.bytes_down - 800, (first, second)
    finally:
        session.stop()
        proxy.close()
        broker.stop()
