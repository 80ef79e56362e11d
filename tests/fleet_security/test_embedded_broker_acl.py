"""The embedded (amqtt) broker of the demo enforces the same rules, through RegistryAccessPlugin."""

from __future__ import annotations

import uuid

import pytest

from edge_node.agent.contract import topic
from edge_node.services import (
    create_enrollment_token,
    enroll_node,
    revoke_node,
    rotate_credentials,
)
from tests.factories import make_site
from tests.fleet_security.mqtt_clients import accepted, connect
from tests.helpers import free_port, wait_until
from web.embedded_broker import EmbeddedBroker

# The plugin reads the registry from its own thread: test data must be committed.
pytestmark = pytest.mark.django_db(transaction=True)
REFUSED = 128


def enrolled(site, node_id):
    _, plaintext = create_enrollment_token(site, node_id=node_id)
    return enroll_node(plaintext, remote_addr="127.0.0.1")


@pytest.fixture
def two_nodes(transactional_db):
    site = make_site()
    u = uuid.uuid4().hex[:6]
    return enrolled(site, f"emb-a-{u}"), enrolled(site, f"emb-b-{u}")


@pytest.fixture
def broker():
    broker = EmbeddedBroker(port=free_port())
    broker.start()
    yield broker
    broker.stop()


def test_it_accepts_enrolled_nodes_and_service_accounts_only(two_nodes, broker, settings):
    a, _ = two_nodes
    good = [connect(broker.port, a.mqtt_username, a.mqtt_password),
            connect(broker.port, settings.MQTT_INGEST_USERNAME, settings.MQTT_INGEST_PASSWORD),
            connect(broker.port, settings.MQTT_PLATFORM_USERNAME, settings.MQTT_PLATFORM_PASSWORD)]
    bad = [connect(broker.port, a.mqtt_username, a.mqtt_password + "x"), connect(broker.port, "nobody", "pw"), connect(broker.port, None, None)]
    try:
        assert [accepted(s) for s in good] == [True, True, True]
        assert [accepted(s) for s in bad] == [False, False, False]
        assert all(str(s.connack[0]) in ("Not authorized", "Bad user name or password") for s in bad if s.connack)
    finally:
        for s in good:
            s.close()


def test_it_delivers_own_telemetry_and_drops_impostor_messages(two_nodes, broker, settings):
    a, b = two_nodes
    ingest = connect(broker.port, settings.MQTT_INGEST_USERNAME, settings.MQTT_INGEST_PASSWORD)
    platform = connect(broker.port, settings.MQTT_PLATFORM_USERNAME, settings.MQTT_PLATFORM_PASSWORD)
    node = connect(broker.port, a.mqtt_username, a.mqtt_password)
    try:
        assert ingest.subscribe("aiot/v1/#") == REFUSED  # amqtt checks the filter itself at SUBSCRIBE
        assert ingest.subscribe("aiot/v1/+/telemetry") == 1
        assert platform.subscribe("aiot/v1/+/telemetry") == 1
        node.publish(topic(b.node.node_id, "telemetry"), b"impostor")
        node.publish(topic(a.node.node_id, "cmd"), b"self-made command")
        node.publish(topic(a.node.node_id, "telemetry"), b"own")
        assert ingest.received() == (topic(a.node.node_id, "telemetry"), b"own")
        assert platform.received() == (topic(a.node.node_id, "telemetry"), b"own")
        assert ingest.messages.empty() and platform.messages.empty()
    finally:
        for s in (ingest, platform, node):
            s.close()


def test_it_lets_a_node_subscribe_only_to_its_own_commands(two_nodes, broker, settings):
    a, b = two_nodes
    node = connect(broker.port, a.mqtt_username, a.mqtt_password)
    platform = connect(broker.port, settings.MQTT_PLATFORM_USERNAME, settings.MQTT_PLATFORM_PASSWORD)
    try:
        assert node.subscribe(topic(b.node.node_id, "cmd")) == REFUSED
        assert node.subscribe("aiot/v1/+/cmd") == REFUSED
        assert node.subscribe(topic(a.node.node_id, "cmd")) == 1
        platform.publish(topic(b.node.node_id, "cmd"), b"for b")
        platform.publish(topic(a.node.node_id, "cmd"), b"for a")
        assert node.received() == (topic(a.node.node_id, "cmd"), b"for a")
        assert node.messages.empty()
    finally:
        node.close()
        platform.close()


def test_it_refuses_a_node_borrowing_another_client_id(two_nodes, broker, settings):
    a, b = two_nodes
    victim = connect(broker.port, b.mqtt_username, b.mqtt_password, client_id=b.node.node_id)
    try:
        thief = connect(broker.port, a.mqtt_username, a.mqtt_password, client_id=b.node.node_id)
        assert not accepted(thief)
        assert not victim.disconnected.is_set()
    finally:
        victim.close()


def test_it_disconnects_and_refuses_a_revoked_node(two_nodes, broker):
    a, b = two_nodes
    node = connect(broker.port, a.mqtt_username, a.mqtt_password)
    other = connect(broker.port, b.mqtt_username, b.mqtt_password)
    assert accepted(node) and accepted(other)

    revoke_node(a.node, actor="test")

    wait_until(node.disconnected.is_set, timeout=5, what="the revoked node to be disconnected")
    node.client.loop_stop()
    assert not accepted(connect(broker.port, a.mqtt_username, a.mqtt_password))
    assert not other.disconnected.is_set()  # the others stay connected
    other.close()


def test_it_refuses_the_old_password_after_rotation(two_nodes, broker):
    a, _ = two_nodes
    creds = rotate_credentials(a.node, actor="test")
    assert not accepted(connect(broker.port, a.mqtt_username, a.mqtt_password))
    fresh = connect(broker.port, a.mqtt_username, creds.mqtt_password)
    assert accepted(fresh)
    fresh.close()


def test_it_makes_a_revoked_simulated_node_back_off_and_say_why_once(two_nodes, broker, tmp_path, caplog):
    import logging
    import time

    from edge_node.agent.const import AUTH_REFUSED_RETRY_S
    from edge_node.agent.fleet import AssetSpec, Fleet, NodeSpec

    a, _ = two_nodes
    spec = NodeSpec(a.node.node_id, username=a.mqtt_username, password=a.mqtt_password, assets=[AssetSpec(f"{a.node.node_id}-p1", "centrifugal_pump")])
    fleet = Fleet([spec], f"mqtt://127.0.0.1:{broker.port}", tmp_path)
    agent = fleet.agents[a.node.node_id]
    fleet.start()
    try:
        wait_until(lambda: agent.link.connected, timeout=10, what="the node to connect")
        with caplog.at_level(logging.INFO, logger="edge_node.agent"):
            revoke_node(a.node, actor="test")
            wait_until(lambda: agent.link.last_error is not None, timeout=10, what="the broker to refuse the revoked node")
            time.sleep(4.0)  # without the hold-off it would try (and log) about once a second
        refusals = [r for r in caplog.records if "refused the connection" in r.getMessage()]
        assert len(refusals) == 1 and "no longer accepted" in refusals[0].getMessage()
        entry = fleet.net._entries[id(agent.link.client)]
        assert entry.hold_until - time.monotonic() > AUTH_REFUSED_RETRY_S - 10
    finally:
        fleet.stop()
