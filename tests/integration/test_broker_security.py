"""The shipped Mosquitto policy (deploy/mosquitto/conf.d/farmwatch.conf + deploy/mosquitto/acl)
on a real broker: authentication required, each farm confined to its own topics, the collector
reads every farm; and ``farmwatch-broker-user`` credentials work against it."""

from __future__ import annotations

import os
import queue
import secrets
import signal
import stat
import subprocess
import threading
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from support.servers import Broker
from support.waiting import wait_for

from collector.broker_users import (
    BrokerUserError,
    FarmCredentials,
    acl_entries,
    acl_grants_farm,
    add_acl_entries,
    add_farm_user,
    main,
)
from farmwatch_local.services import (
    SHIPPED_BROKER_ACL,
    SHIPPED_BROKER_CONF,
    MosquittoServer,
    free_port,
)

NOT_AUTHORIZED = 135


def connect_result(broker: Broker, user: str | None, password: str | None) -> ReasonCode:
    """The CONNACK reason code the broker answers with."""
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"probe-{user}",
        protocol=paho.MQTTv5,
    )
    if user is not None:
        client.username_pw_set(user, password)
    answers: queue.Queue[ReasonCode] = queue.Queue()
    client.on_connect = lambda c, u, f, rc, p: answers.put(rc)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        return answers.get(timeout=10)
    finally:
        client.disconnect()
        client.loop_stop()


class Listener:
    """A subscribed client that records what it receives."""

    def __init__(self, broker: Broker, user: str, topic: str, password: str | None = None):
        self.received: list[str] = []
        self.granted: list[ReasonCode] = []
        self._subscribed = threading.Event()
        self.client = broker.client(user, f"listener-{user}", password)
        self.client.on_message = lambda c, u, m: self.received.append(m.topic)

        def on_subscribe(
            c: object, u: object, mid: int, codes: list[ReasonCode], p: object
        ) -> None:
            self.granted = codes
            self._subscribed.set()

        self.client.on_subscribe = on_subscribe
        self.client.subscribe(topic, qos=1)
        assert self._subscribed.wait(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish(broker: Broker, user: str, topic: str, password: str | None = None) -> ReasonCode:
    """Publish QoS 1 and return the broker's PUBACK reason code (MQTT v5)."""
    client = broker.client(user, f"pub-{user}", password)
    acks: queue.Queue[ReasonCode] = queue.Queue()
    client.on_publish = lambda c, u, mid, rc, p: acks.put(rc)
    try:
        client.publish(topic, b"probe", qos=1)
        return acks.get(timeout=10)
    finally:
        client.disconnect()
        client.loop_stop()


def test_anonymous_and_wrong_passwords_are_refused(broker: Broker) -> None:
    assert connect_result(broker, None, None).is_failure
    assert connect_result(broker, "oax-mixteca", "wrong").is_failure
    assert connect_result(broker, "nobody", "whatever").is_failure
    assert not connect_result(broker, "oax-mixteca", broker.passwords["oax-mixteca"]).is_failure


def test_a_farm_cannot_publish_into_another_farms_topics(broker: Broker) -> None:
    collector = Listener(broker, "farmwatch-collector", "farmwatch/v1/#")
    try:
        denied = publish(broker, "oax-mixteca", "farmwatch/v1/oax-istmo/pi-1/readings")
        assert denied.value == NOT_AUTHORIZED
        assert publish(broker, "oax-mixteca", "farmwatch/other/topic").value == NOT_AUTHORIZED
        own = publish(broker, "oax-mixteca", "farmwatch/v1/oax-mixteca/pi-1/readings")
        assert not own.is_failure
        wait_for(lambda: collector.received, what="the allowed message")
        # the denied publications never reached any subscriber
        assert collector.received == ["farmwatch/v1/oax-mixteca/pi-1/readings"]
    finally:
        collector.close()


def test_a_farm_cannot_read_other_farms_and_the_collector_reads_all(broker: Broker) -> None:
    nosy = Listener(broker, "oax-mixteca", "farmwatch/v1/#")
    collector = Listener(broker, "farmwatch-collector", "farmwatch/v1/#")
    try:
        for farm in ("oax-istmo", "chis-frailesca", "oax-mixteca"):
            assert not publish(broker, farm, f"farmwatch/v1/{farm}/pi-1/status").is_failure
        wait_for(lambda: len(collector.received) == 3, what="the collector got every farm")
        assert sorted(collector.received) == [
            "farmwatch/v1/chis-frailesca/pi-1/status",
            "farmwatch/v1/oax-istmo/pi-1/status",
            "farmwatch/v1/oax-mixteca/pi-1/status",
        ]
        wait_for(lambda: nosy.received, what="the farm's own message")
        assert nosy.received == ["farmwatch/v1/oax-mixteca/pi-1/status"]
    finally:
        nosy.close()
        collector.close()


def test_the_alerting_service_reads_every_farm_and_publishes_nothing(broker: Broker) -> None:
    alerts = Listener(broker, "farmwatch-alerts", "farmwatch/v1/#")
    try:
        for farm in ("oax-istmo", "oax-mixteca"):
            assert not publish(broker, farm, f"farmwatch/v1/{farm}/pi-1/readings").is_failure
        wait_for(lambda: len(alerts.received) == 2, what="the alerter got both farms")
    finally:
        alerts.close()
    for topic in ("farmwatch/v1/oax-mixteca/pi-1/readings", "farmwatch/deadletter/v1"):
        assert publish(broker, "farmwatch-alerts", topic).value == NOT_AUTHORIZED


def test_the_collector_cannot_forge_readings(broker: Broker) -> None:
    topic = "farmwatch/v1/oax-mixteca/pi-1/readings"
    assert publish(broker, "farmwatch-collector", topic).value == NOT_AUTHORIZED
    # it may publish dead letters
    assert not publish(broker, "farmwatch-collector", "farmwatch/deadletter/x").is_failure


def test_generated_farm_credentials_work_only_for_that_farm(
    broker: Broker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    password_file = broker.server.data_dir / "passwd"
    secret_file = tmp_path / "oax-nueva.secret"
    acl = tmp_path / "acl"
    acl.write_text(SHIPPED_BROKER_ACL.read_text(encoding="utf-8"), encoding="utf-8")
    code = main(
        [
            "oax-nueva",
            "--password-file",
            str(password_file),
            "--acl-file",
            str(acl),
            "--secret-out",
            str(secret_file),
        ]
    )
    assert code == 0
    password = secret_file.read_text(encoding="utf-8").strip()
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    out = capsys.readouterr().out
    assert password not in out  # written to the file only
    assert "already granted" in out  # the shipped pattern covers every farm user
    assert acl.read_text(encoding="utf-8") == SHIPPED_BROKER_ACL.read_text(encoding="utf-8")

    assert broker.server.process is not None
    os.kill(broker.server.process.pid, signal.SIGHUP)  # Mosquitto rereads its password file
    wait_for(
        lambda: not connect_result(broker, "oax-nueva", password).is_failure,
        what="new farm user accepted",
    )
    assert not publish(broker, "oax-nueva", "farmwatch/v1/oax-nueva/pi-1/x", password).is_failure
    denied = publish(broker, "oax-nueva", "farmwatch/v1/oax-mixteca/pi-1/readings", password)
    assert denied.value == NOT_AUTHORIZED
    # the other users still work
    assert not connect_result(broker, "oax-mixteca", broker.passwords["oax-mixteca"]).is_failure


def test_password_is_printed_once_when_no_secret_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    password_file = tmp_path / "passwd"
    assert (
        main(
            [
                "oax-nueva",
                "--password-file",
                str(password_file),
                "--acl-file",
                str(tmp_path / "acl"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    password = out[-1]
    assert len(password) >= 32
    text = password_file.read_text(encoding="utf-8")
    assert text.startswith("oax-nueva:$7$")
    assert password not in text  # only the hash is stored
    assert stat.S_IMODE(password_file.stat().st_mode) & 0o077 == 0
    # without the shipped pattern, explicit entries are appended, once
    assert (tmp_path / "acl").read_text(encoding="utf-8").splitlines() == acl_entries("oax-nueva")
    assert not add_acl_entries("oax-nueva", tmp_path / "acl")


def test_invalid_or_reserved_users_are_refused(tmp_path: Path) -> None:
    for bad in ("../etc", "Farm With Spaces", "farmwatch-collector", "farmwatch-alerts", ""):
        with pytest.raises(BrokerUserError):
            add_farm_user(bad, tmp_path / "passwd")
    assert not (tmp_path / "passwd").exists()


def test_credentials_never_show_the_password() -> None:
    credentials = FarmCredentials("oax-nueva", "s3cret-value")
    assert "s3cret-value" not in repr(credentials)
    assert "s3cret-value" not in str(credentials)


def test_acl_detection() -> None:
    shipped = SHIPPED_BROKER_ACL.read_text(encoding="utf-8")
    assert acl_grants_farm(shipped, "any-farm")
    assert not acl_grants_farm("user farmwatch-collector\ntopic read farmwatch/v1/#\n", "x")
    assert acl_grants_farm("\n".join(acl_entries("x")), "x")


def tls_lines_from_shipped_config(port: int, certs: Path) -> str:
    """The commented TLS listener of the shipped config, enabled with test paths."""
    shipped = SHIPPED_BROKER_CONF.read_text(encoding="utf-8").splitlines()
    wanted = ("listener 8883", "cafile ", "certfile ", "keyfile ", "tls_version ")
    lines = [line[2:] for line in shipped if line.startswith("# ") and line[2:].startswith(wanted)]
    assert len(lines) == 5, lines
    rename = {"cafile": "ca.crt", "certfile": "server.crt", "keyfile": "server.key"}
    enabled = []
    for line in lines:
        key = line.split()[0]
        if key == "listener":
            enabled.append(f"listener {port} 127.0.0.1")
        elif key in rename:
            enabled.append(f"{key} {certs / rename[key]}")
        else:
            enabled.append(line)
    return "\n".join(enabled)


def make_certificates(directory: Path) -> None:
    """A throw-away CA and a server certificate for 127.0.0.1 (openssl, EC P-256)."""
    directory.mkdir()

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl(
        "req",
        "-x509",
        *curve,
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "1",
        "-subj",
        "/CN=farmwatch test CA",
    )
    openssl("req", *curve, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (directory / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "1",
        "-extfile",
        "san.cnf",
    )


def test_documented_tls_listener_keeps_authentication_and_acls(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    make_certificates(certs)
    tls_port = free_port()
    passwords = {"oax-mixteca": secrets.token_hex(12), "farmwatch-collector": secrets.token_hex(12)}
    server = MosquittoServer(
        data_dir=tmp_path / "mosquitto",
        users=passwords,
        extra_config=tls_lines_from_shipped_config(tls_port, certs),
    )
    server.start()
    try:

        def tls_client(user: str | None) -> tuple[paho.Client, queue.Queue[ReasonCode]]:
            client = paho.Client(
                callback_api_version=CallbackAPIVersion.VERSION2,
                client_id=f"tls-{user}",
                protocol=paho.MQTTv5,
            )
            client.tls_set(ca_certs=str(certs / "ca.crt"))
            if user is not None:
                client.username_pw_set(user, passwords[user])
            answers: queue.Queue[ReasonCode] = queue.Queue()
            client.on_connect = lambda c, u, f, rc, p: answers.put(rc)
            client.on_publish = lambda c, u, mid, rc, p: answers.put(rc)
            client.connect("127.0.0.1", tls_port)
            client.loop_start()
            return client, answers

        anonymous, answers = tls_client(None)
        assert answers.get(timeout=10).is_failure
        anonymous.loop_stop()
        farm, answers = tls_client("oax-mixteca")
        try:
            assert not answers.get(timeout=10).is_failure  # TLS handshake + login
            farm.publish("farmwatch/v1/oax-istmo/pi-1/readings", b"x", qos=1)
            assert answers.get(timeout=10).value == NOT_AUTHORIZED
        finally:
            farm.disconnect()
            farm.loop_stop()
    finally:
        server.stop()
