"""On the hub too, a reconnect after a link drop resumes the TLS session
(``farmwatch_shared/tls_resume.py`` through asyncio's TLS, nats-py): the node does not send its
certificate again, which on a paid link is most of a reconnect."""

from __future__ import annotations

import ssl
from pathlib import Path

from pydantic import SecretStr
from support.waiting import wait_for

from farmwatch_local.nats import NatsCluster
from farmwatch_local.wire import CountingProxy
from farmwatch_shared.hub.endpoint import NatsEndpoint
from farmwatch_shared.hub.link import NatsLink

FARM = "oax-mixteca"


def test_a_hub_reconnect_through_a_dropped_link_resumes_the_tls_session(tmp_path: Path) -> None:
    cluster = NatsCluster(tmp_path / "hub", [FARM], size=1, tls=True)
    cluster.start()
    proxy = CountingProxy(cluster.nodes[0].client_port)
    link = NatsLink(
        NatsEndpoint(
            (f"tls://127.0.0.1:{proxy.port}",),
            "test-tls-resume",
            FARM,
            SecretStr(cluster.passwords[FARM]),
            cluster.ca_file,
        )
    )
    link.start()
    try:
        assert link.wait_connected(20)
        assert not link.tls_resumed
        first = proxy.latest()
        proxy.cut()
        wait_for(
            lambda: proxy.connections() == 2 and link.connected,
            timeout_s=30,
            what="reconnected through the proxy",
        )
        assert link.tls_resumed
        second = proxy.latest()
        # the node's certificate is not sent again
        certificate = ssl.PEM_cert_to_DER_cert((cluster.data_dir / "certs" / "n1.crt").read_text())
        assert second.bytes_down < first.bytes_down - len(certificate), (first, second)
    finally:
        link.stop()
        proxy.close()
        cluster.stop()
